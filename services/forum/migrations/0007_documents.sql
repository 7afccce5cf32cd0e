-- The shared document library: folders (one level of subfolders, may belong to groups),
-- documents with every uploaded version, download and preview counts, and comments.
CREATE TABLE forum.folders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id bigint REFERENCES forum.folders,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    position integer NOT NULL DEFAULT 0,
    -- Empty: everyone may read. Otherwise only members of these groups (and staff).
    group_ids bigint[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX folders_parent ON forum.folders (parent_id, position, id);

CREATE TABLE forum.documents (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    folder_id bigint NOT NULL REFERENCES forum.folders,
    title text NOT NULL,
    description text NOT NULL DEFAULT '',
    uploader_id bigint NOT NULL REFERENCES forum.users,
    current_version integer NOT NULL DEFAULT 1,
    downloads_count bigint NOT NULL DEFAULT 0,
    previews_count bigint NOT NULL DEFAULT 0,
    unique_downloads_count bigint NOT NULL DEFAULT 0,   -- members who downloaded it
    unique_previews_count bigint NOT NULL DEFAULT 0,    -- members who previewed it
    comments_count integer NOT NULL DEFAULT 0,          -- visible comments
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX documents_folder ON forum.documents (folder_id, updated_at DESC) WHERE deleted_at IS NULL;

-- Every uploaded file of a document; a new version never replaces an old one.
CREATE TABLE forum.document_versions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES forum.documents,
    version integer NOT NULL,
    filename text NOT NULL,
    kind text NOT NULL,              -- pdf, docx, png, text, ... (filetypes.py)
    content_type text NOT NULL,
    size_bytes bigint NOT NULL,
    sha256 text NOT NULL,
    storage_key text NOT NULL,
    uploader_id bigint NOT NULL REFERENCES forum.users,
    note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (document_id, version)
);

-- Who downloaded or previewed a document at least once (for the unique counts).
CREATE TABLE forum.document_views (
    document_id bigint NOT NULL REFERENCES forum.documents,
    kind text NOT NULL CHECK (kind IN ('download', 'preview')),
    user_id bigint NOT NULL REFERENCES forum.users ON DELETE CASCADE,
    first_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, kind, user_id)
);

CREATE TABLE forum.document_comments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES forum.documents,
    author_id bigint NOT NULL REFERENCES forum.users,
    raw text NOT NULL,
    cooked text NOT NULL,
    plain text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'visible' CHECK (status IN ('visible', 'hidden', 'deleted')),
    reactions jsonb NOT NULL DEFAULT '{}',
    revision integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);
CREATE INDEX document_comments_document ON forum.document_comments (document_id, id);
CREATE INDEX document_comments_author ON forum.document_comments (author_id, created_at DESC);

CREATE TABLE forum.document_comment_revisions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    comment_id bigint NOT NULL REFERENCES forum.document_comments,
    revision integer NOT NULL,
    raw text NOT NULL,
    editor_id bigint NOT NULL REFERENCES forum.users,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (comment_id, revision)
);

CREATE TABLE forum.document_comment_reactions (
    comment_id bigint NOT NULL REFERENCES forum.document_comments,
    user_id bigint NOT NULL REFERENCES forum.users,
    kind text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id, kind)
);

-- Flags on comments, for the moderators' review queue.
CREATE TABLE forum.document_comment_flags (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    comment_id bigint NOT NULL REFERENCES forum.document_comments,
    user_id bigint NOT NULL REFERENCES forum.users,
    reason text NOT NULL CHECK (reason IN ('off_topic', 'inappropriate', 'spam', 'safeguarding', 'other')),
    note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    UNIQUE (comment_id, user_id)
);
