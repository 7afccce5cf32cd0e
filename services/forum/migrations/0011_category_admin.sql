-- Managing categories from pages (issue 14): subcategories one level deep, the kind a new topic
-- starts as, and archiving. Existing categories stay top-level, open, and start discussions.
ALTER TABLE forum.categories
    -- A subcategory's parent; one level only (a parent has no parent), which categories.py checks
    -- with both rows locked. A category with subcategories cannot be deleted (the reference holds).
    ADD COLUMN parent_id bigint REFERENCES forum.categories,
    ADD COLUMN default_kind text NOT NULL DEFAULT 'discussion'
        CHECK (default_kind IN ('discussion', 'blog', 'case_study', 'narrative')),
    -- Archived: readable with its topics, but takes no new topics or replies.
    ADD COLUMN archived_at timestamptz,
    ADD CONSTRAINT categories_not_own_parent CHECK (parent_id IS NULL OR parent_id <> id);

CREATE INDEX categories_parent ON forum.categories (parent_id) WHERE parent_id IS NOT NULL;
