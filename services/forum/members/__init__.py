"""Members as staff see them: search by name, email, role, status and join date; a member's
standing (posts, flags received, sanctions, appeals); role changes and the moderation actions."""
