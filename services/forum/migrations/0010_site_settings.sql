-- Site settings admins change from /admin/settings (shared/site_settings.py names the keys: the
-- attributes of shared/settings.py's editable variables). A row overrides the environment's value;
-- no row: the environment's value (or its built-in default) applies. Values are kept as text and
-- parsed by the variable's own parser wherever they are read.
CREATE TABLE forum.site_settings (
    key text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    value text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint REFERENCES forum.users (id) ON DELETE SET NULL
);
