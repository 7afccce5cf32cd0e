"""Issue 12, defect 13 (images): a post cannot make readers' browsers fetch an image from elsewhere
(a tracking pixel); such an image becomes a plain link. Images tica serves itself stay images."""

from __future__ import annotations

import pytest

from shared.markdown import LINK_REL, render


def test_remote_image_becomes_a_link_named_by_its_alt_text() -> None:
    """![a cat](https://...) is a link to the image, its text the alt text; no <img> is left."""
    cooked = render("![a cat](https://example.org/cat.png)").cooked
    assert cooked == f'<p><a href="https://example.org/cat.png" rel="{LINK_REL}">a cat</a></p>'


@pytest.mark.parametrize(
    "src",
    [
        "http://tracker.example/pixel.gif",
        "https://tracker.example/p.gif?user=1",
        "//tracker.example/pixel.gif",  # another origin without a scheme
        "HTTPS://tracker.example/pixel.gif",
    ],
)
def test_images_from_other_origins_are_never_images(src: str) -> None:
    """Any absolute or scheme-relative source is another origin: no <img>, a link instead."""
    cooked = render(f'Hello ![pixel]({src} "Title")').cooked
    assert "<img" not in cooked
    assert ">pixel</a>" in cooked and 'title="Title"' in cooked


def test_image_without_alt_text_links_with_its_address() -> None:
    """With no alt text the link shows the address, so it is never an empty link."""
    cooked = render("![](https://example.org/a.png)").cooked
    assert cooked == f'<p><a href="https://example.org/a.png" rel="{LINK_REL}">https://example.org/a.png</a></p>'


def test_remote_image_inside_a_link_leaves_its_alt_text() -> None:
    """A linked remote image ([![badge](remote)](target)) keeps the outer link and shows the alt text."""
    cooked = render("[![build badge](https://ci.example/badge.svg)](https://ci.example/)").cooked
    assert cooked == f'<p><a href="https://ci.example/" rel="{LINK_REL}">build badge</a></p>'


@pytest.mark.parametrize("src", ["/uploads/1.png", "/documents/3/preview.png"])
def test_images_tica_serves_itself_stay(src: str) -> None:
    """A same-origin (root-relative) image is still an image."""
    assert f'<img src="{src}" alt="up">' in render(f"![up]({src})").cooked


def test_raw_img_tags_with_remote_sources_do_not_survive_sanitising() -> None:
    """Even if markup reached the sanitiser with a remote <img>, its source would be dropped."""
    from shared.markdown import _cleaner

    cleaned = _cleaner().clean('<img src="https://tracker.example/p.gif" alt="x">')
    assert "tracker.example" not in cleaned
