"""A document comment a moderator (or members' flags) hid leaves search results, and comes
back when it is restored: document.comment_edited carries the comment's status."""

from __future__ import annotations

from search_helpers import comment, found, new_folder, share, unique


async def test_a_hidden_comment_leaves_search_and_a_restore_brings_it_back(index, search, member_factory):
    admin = await member_factory("librarian", roles=("member", "admin"))
    writer = await member_factory("commenter")
    moderator = await member_factory("mod", roles=("member", "moderator"))
    word = unique()
    folder = await new_folder(admin.client, "Reports")
    document = await share(writer.client, folder, "Evaluation report")
    comment_id = await comment(writer.client, document, f"Page four matters {word}")
    await index.sync()
    assert found(await search(word)) == [("document_comment", comment_id)]
    # A moderator's flag weighs enough to hide it at the default threshold.
    flagged = await moderator.client.post(f"/api/document-comments/{comment_id}/flags", json={"reason": "spam"})
    assert flagged.status_code == 201
    await index.sync()
    assert found(await search(word)) == []
    items = (await moderator.client.get("/api/review?kind=flagged_comment")).json()["items"]
    restored = await moderator.client.post(f"/api/review/{items[0]['id']}", json={"action": "restore"})
    assert restored.status_code == 200
    await index.sync()
    assert found(await search(word)) == [("document_comment", comment_id)]
