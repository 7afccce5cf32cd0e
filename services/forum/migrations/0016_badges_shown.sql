-- Which of their badges a member shows beside their name on their posts. A badge such as "Expert by
-- experience" is personal: none is shown until the member chooses it.
ALTER TABLE forum.user_badges ADD COLUMN shown boolean NOT NULL DEFAULT false;
