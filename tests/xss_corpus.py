"""XSS corpus and the `assert_inert` checker, shared by every test that looks at HTML we serve.

`PAYLOADS` are post bodies (Markdown, raw HTML, tica's [quote] and @mention syntax) that try to get
script execution, navigation or styling past the content pipeline. `assert_inert(html)` fails on
anything in HTML that could run script or navigate somewhere dangerous; pass `page=True` (and
`allow_script_src=True`) to check a whole page, whose own head, forms and static scripts are expected.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["PAYLOADS", "assert_inert", "unsafe_url"]

_NESTED = "".join(f'[quote="u{i}, post:{i}, topic:1"]\n' for i in range(40))
_NESTED += "<script>alert(1)</script> [x](javascript:alert(1))\n" + "[/quote]\n" * 40

PAYLOADS: list[str] = [
    # --- Markdown links with dangerous schemes, in many spellings ---
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](<javascript:alert(1)>)",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](jav\tascript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;&#x3A;alert(1))",
    "[x](jav&#0000097;script:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](&#x00;javascript:alert(1))",
    "[x](\x01javascript:alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](javascript://%0aalert(1))",
    '[x](javascript:alert(1) "title")',
    "[x](vbscript:msgbox(1))",
    "[x](VBScript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](DATA:text/html,alert(1))",
    "[x](file:///etc/passwd)",
    "[x](\\javascript:alert(1))",
    '[x](https://example.com "\\" onmouseover=\\"alert(1)")',
    '[x](https://example.com" onclick="alert(1))',
    "[x](https://example.com'onclick='alert(1))",
    "[![x](javascript:alert(1))](javascript:alert(2))",
    "> [x](javascript:alert(1))",
    "- [x](javascript:alert(1))\n  - [y](vbscript:alert(1))",
    # --- Markdown images ---
    "![x](javascript:alert(1))",
    "![x](JAVASCRIPT:alert(1))",
    "![x](vbscript:msgbox(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "![x](mailto:a@example.com)",
    '![x" onerror="alert(1)](https://example.com/a.png)',
    '![x](https://example.com/a.png" onerror="alert(1))',
    '![x](https://example.com/a.png "\\" onerror=\\"alert(1)")',
    "![<img src=x onerror=alert(1)>](https://example.com/a.png)",
    # --- Reference-style links and images ---
    "[x][1]\n\n[1]: javascript:alert(1)",
    '[x]\n\n[x]: JaVaScript:alert(1) "t"',
    "![x][i]\n\n[i]: data:image/svg+xml,<svg onload=alert(1)>",
    "[x][y]\n\n[y]: <javascript:alert(1)>",
    "[x][z]\n\n[z]: &#106;avascript:alert(1)",
    # --- Autolinks and linkify ---
    "<javascript:alert(1)>",
    "<JAVASCRIPT:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "<javascript&#58;alert(1)>",
    "javascript:alert(1)",
    "<mailto:x@example.com?body=<script>alert(1)</script>>",
    'https://example.com/"onmouseover="alert(1)',
    "https://example.com/<script>alert(1)</script>",
    "<http://example.com/?x=<script>alert(1)</script>>",
    # --- Raw HTML ---
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=alert(1)",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
    '<svg><animate attributeName="href" values="javascript:alert(1)"/></svg>',
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>">',
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)" onclick="alert(2)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="javas&#99;ript:alert(1)">x</a>',
    '<a href="\tjavascript:alert(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    '<div style="width: expression(alert(1))">x</div>',
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<base href="javascript:alert(1)//">',
    '<form action="javascript:alert(1)"><button>x</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<link rel="stylesheet" href="javascript:alert(1)">',
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    '<video><source onerror="alert(1)"></video>',
    '<img srcset="javascript:alert(1) 1x">',
    "<image src=x onerror=alert(1)>",
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    "<isindex action=javascript:alert(1) type=image>",
    '<!--<img src="--><img src=x onerror=alert(1)//">',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<xmp><script>alert(1)</script></xmp>",
    "<template><script>alert(1)</script></template>",
    "<x onclick=alert(1)>x</x>",
    "<div>\n<script>alert(1)</script>\n</div>",
    "**<img src=x onerror=alert(1)>**",
    "# <script>alert(1)</script>",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    # --- Tables and code ---
    "|a|\n|-|\n|<script>alert(1)</script>|",
    "|a|\n|-|\n|[x](javascript:alert(1))|",
    '|a|\n|:-" onmouseover="alert(1)|\n|x|',
    '```" onmouseover="alert(1)\nx\n```',
    "```<script>alert(1)</script>\nx\n```",
    "`<script>alert(1)</script>`",
    # --- [quote] blocks ---
    '[quote="<script>alert(1)</script>, post:1, topic:1"]\nx\n[/quote]',
    '[quote="<script>, post:1, topic:1"]\nx\n[/quote]',
    '[quote="\\" onmouseover=\\"alert(1), post:1, topic:1"]\nx\n[/quote]',
    "[quote=\"a' onmouseover='alert(1), post:1, topic:1\"]\nx\n[/quote]",
    '[quote="a, post:1 onclick=alert(1), topic:1"]\nx\n[/quote]',
    '[quote="a, post:javascript:alert(1), topic:1"]\nx\n[/quote]',
    "[quote=<img src=x onerror=alert(1)>]\nx\n[/quote]",
    '[quote="a, post:1, topic:1"]\n[quote="<svg onload=alert(1)>, post:2, topic:1"]\n'
    "[x](javascript:alert(1))\n<script>alert(1)</script>\n[/quote]\n[/quote]",
    '[quote="a, post:1, topic:1"]\n[quote]\n<iframe src=javascript:alert(1)>\n[/quote]',
    "[/quote]\n<script>alert(1)</script>\n[quote]",
    '- [quote="a, post:1, topic:1"]\n  <img src=x onerror=alert(1)>\n  [/quote]',
    _NESTED,
    # --- @mentions ---
    "@<script>alert(1)</script>",
    "@alice<img src=x onerror=alert(1)>",
    "@javascript:alert(1)",
    "[@alice](javascript:alert(1))",
    '@alice"onmouseover="alert(1)',
    "@al\"ice' onclick='alert(1)",
    # --- Unicode tricks ---
    "[x](java\x00script:alert(1))",
    "[x](\u200bjavascript:alert(1))",
    "[x](\u2028javascript:alert(1))",
    "[x](%E2%80%A8javascript:alert(1))",
    "[x](\uff4a\uff41\uff56\uff41\uff53\uff43\uff52\uff49\uff50\uff54:alert(1))",
    "[x](javascript\uff1aalert(1))",
    "<\u017fcript>alert(1)</\u017fcript>",
    "\x00<script>alert(1)</script>",
    "[\u202ex](javascript:alert(1))",
]


# Elements that never belong in user content; some are allowed on full pages (see _PAGE_ELEMENTS).
_FORBIDDEN = frozenset(
    {
        "script", "iframe", "frame", "frameset", "object", "embed", "applet", "portal", "style", "base",
        "form", "meta", "link", "svg", "math",
    }
)  # fmt: skip
_PAGE_ELEMENTS = frozenset({"form", "meta", "link", "svg"})
# SVG elements that can rewrite an attribute (href) to a javascript: URL, or embed HTML, after our checks.
_SVG_TRAPS = frozenset({"animate", "set", "animatemotion", "animatetransform", "foreignobject"})
_URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "action", "formaction", "xlink:href", "background", "poster", "data", "cite",
        "ping", "lowsrc", "dynsrc", "longdesc", "codebase",
    }
)  # fmt: skip
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SCRIPT_ATTRIBUTES = frozenset({"src", "type", "defer", "nonce", "integrity", "crossorigin"})
_META_ATTRIBUTES = frozenset({"charset", "name", "content", "property"})
_STATIC_LINK_RELS = frozenset({"stylesheet", "preload", "modulepreload"})
_OTHER_LINK_RELS = frozenset({"icon", "shortcut", "apple-touch-icon", "canonical", "alternate", "manifest"})
# What a browser ignores inside a URL's scheme: whitespace and control characters (C0, DEL, C1).
_URL_NOISE = re.compile(r"[\x00-\x20\x7f-\x9f\s]+")
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):")


def unsafe_url(value: str) -> bool:
    """Whether an (already HTML-unescaped) URL has a scheme other than http, https or mailto."""
    match = _SCHEME.match(_URL_NOISE.sub("", value).lower())
    return match is not None and match.group(1) not in _SAFE_SCHEMES


def _is_static(url: str | None) -> bool:
    return url is not None and url.startswith("/static/")


class _InertChecker(HTMLParser):
    """Collects a description of everything dangerous in a document."""

    def __init__(self, *, page: bool, allow_script_src: bool) -> None:
        # Attribute values are always unescaped by HTMLParser, exactly once, as a browser does.
        super().__init__(convert_charrefs=True)
        self.page = page
        self.allow_script_src = allow_script_src
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check_element(tag, dict(attrs))
        for name, value in attrs:
            self._check_attribute(tag, name, value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append(f"inline script body {data[:60]!r}")

    def _check_element(self, tag: str, attrs: dict[str, str | None]) -> None:
        if tag == "script":
            self._in_script = True
            if not self._allowed_script(attrs):
                self.problems.append(f"<script {attrs}>")
        elif tag in _SVG_TRAPS:
            self.problems.append(f"<{tag}>")
        elif tag in _FORBIDDEN and not (self.page and tag in _PAGE_ELEMENTS and self._allowed_page_element(tag, attrs)):
            self.problems.append(f"<{tag} {attrs}>")

    def _allowed_script(self, attrs: dict[str, str | None]) -> bool:
        return self.allow_script_src and _is_static(attrs.get("src")) and set(attrs) <= _SCRIPT_ATTRIBUTES

    def _allowed_page_element(self, tag: str, attrs: dict[str, str | None]) -> bool:
        if tag == "meta":
            return set(attrs) <= _META_ATTRIBUTES
        if tag == "link":
            rels = set((attrs.get("rel") or "").lower().split())
            if rels & _STATIC_LINK_RELS:
                return _is_static(attrs.get("href"))
            return bool(rels) and rels <= _OTHER_LINK_RELS
        if tag == "form":
            action = attrs.get("action")
            return action is None or (action.startswith("/") and not action.startswith("//"))
        return tag == "svg"  # inline icons; their contents are checked like everything else

    def _check_attribute(self, tag: str, name: str, value: str | None) -> None:
        if _dangerous_attribute(name, value):
            self.problems.append(f"<{tag} {name}={value!r}>")


def _dangerous_attribute(name: str, value: str | None) -> bool:
    if name.startswith("on") or name in ("style", "srcdoc"):
        return True
    if value is None:
        return False
    if name in ("srcset", "imagesrcset"):
        return any(unsafe_url(candidate.split()[0]) for candidate in value.split(",") if candidate.strip())
    return name in _URL_ATTRIBUTES and unsafe_url(value)


def assert_inert(html: str, *, page: bool = False, allow_script_src: bool = False) -> None:
    """Fail if html could run script, load a dangerous URL, restyle or re-target the page.

    Fragments (cooked posts, API output) may contain none of script, iframe, frame(set), object,
    embed, applet, portal, style, base, form, meta, link, svg, math; no on* / style / srcdoc attribute;
    no URL attribute whose scheme is not http, https or mailto. With `page=True` a page's own
    `<meta charset|name|content>`, `<link rel=stylesheet href=/static/...>` / icon / canonical links,
    same-origin forms and inline SVG icons are allowed; `allow_script_src=True` also allows
    `<script src="/static/...">` with no body.
    """
    checker = _InertChecker(page=page, allow_script_src=allow_script_src)
    checker.feed(html)
    checker.close()
    assert not checker.problems, "HTML is not inert:\n  " + "\n  ".join(checker.problems)
