-- The safeguarding loop: alerts (and re-alerts while nobody has picked an item up), who is looking
-- at an item, what was done about it, and the "safeguarding lead" duty some staff hold.

-- alert_round: 0 while a pending item has not been alerted yet (reviews.open_review alerts it in the
-- same transaction: round 1), then 2, 3, ... each time nobody picked it up in time.
ALTER TABLE forum.reviewables ADD COLUMN alert_round integer NOT NULL DEFAULT 0;
ALTER TABLE forum.reviewables ADD COLUMN alerted_at timestamptz;
ALTER TABLE forum.reviewables ADD COLUMN picked_up_by bigint REFERENCES forum.users;
ALTER TABLE forum.reviewables ADD COLUMN picked_up_at timestamptz;
-- reached_out, signposted, escalated (outside the community), no_action; with a note (staff only).
ALTER TABLE forum.reviewables ADD COLUMN outcome text
    CHECK (outcome IN ('reached_out', 'signposted', 'escalated', 'no_action'));
ALTER TABLE forum.reviewables ADD COLUMN outcome_note text;

-- The header's count (every staff page) and the re-alert loop read only pending items.
CREATE INDEX reviewables_pending ON forum.reviewables (kind, alerted_at) WHERE status = 'pending';

-- Staff who are told about every safeguarding item by email too (moderators and admins only:
-- taking away a member's staff role takes the duty with it).
ALTER TABLE forum.users ADD COLUMN safeguarding_lead boolean NOT NULL DEFAULT false;
