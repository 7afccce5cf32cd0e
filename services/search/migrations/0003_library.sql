-- Comments on library documents (kind 'document_comment'), and pseudonymous posts.
--
-- A comment's place is its document (document_id) and the document's folder (folder_id),
-- and its audience is the folder's. search.library_documents and search.folders remember
-- the newest word the indexer has had on each document and folder (each stamped with the
-- id of that event), so a comment whose event comes late still lands where its document
-- now is, with the audience its folder now has, and never in a deleted document.
ALTER TABLE search.documents
    ADD COLUMN document_id bigint,
    ADD COLUMN folder_id bigint,
    -- Posted pseudonymously: no author is kept (author_id stays NULL), so @username never finds it.
    ADD COLUMN anonymous boolean NOT NULL DEFAULT false;
CREATE INDEX documents_document ON search.documents (document_id) WHERE document_id IS NOT NULL;
CREATE INDEX documents_folder ON search.documents (folder_id) WHERE folder_id IS NOT NULL;

CREATE TABLE search.folders (
    folder_id bigint PRIMARY KEY,
    audience text[] NOT NULL DEFAULT '{}',
    version uuid  -- NULL: a placeholder (no folder.updated seen yet) or a row from the forum's export
);

CREATE TABLE search.library_documents (
    document_id bigint PRIMARY KEY,
    folder_id bigint NOT NULL,
    title text NOT NULL DEFAULT '',
    audience text[] NOT NULL DEFAULT '{}',  -- as the newest document event said; the folder's wins when newer
    deleted boolean NOT NULL DEFAULT false, -- for good: a document is never brought back
    version uuid
);
