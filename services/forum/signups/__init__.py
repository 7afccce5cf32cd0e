"""Sign-up modes: open, approval (a new account waits in a staff queue with its answer to the
sign-up question) and invite-only (site-wide invitations by email from staff)."""
