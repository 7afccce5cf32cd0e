"""File types are decided from content (magic bytes, zip and OLE2 directories, UTF-8 text);
names must agree, and are cleaned of paths and control characters."""

from __future__ import annotations

import pytest
from library_helpers import (
    cfb_bytes,
    elf_bytes,
    jpeg_bytes,
    odf_bytes,
    ooxml_bytes,
    pdf_bytes,
    pe_bytes,
    plain_zip,
    png_bytes,
)

from services.forum.library import filetypes
from services.forum.library.filetypes import UnsupportedFile, clean_filename, detect, identify, name_for


def write(tmp_path, content: bytes):
    path = tmp_path / "upload"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (pdf_bytes(), "pdf"),
        (png_bytes(), "png"),
        (jpeg_bytes(), "jpeg"),
        (ooxml_bytes("docx"), "docx"),
        (ooxml_bytes("pptx"), "pptx"),
        (ooxml_bytes("xlsx"), "xlsx"),
        (odf_bytes("odt"), "odt"),
        (odf_bytes("ods"), "ods"),
        (odf_bytes("odp"), "odp"),
        (cfb_bytes(["WordDocument", "1Table"]), "doc"),
        (cfb_bytes(["PowerPoint Document", "Current User"]), "ppt"),
        (cfb_bytes(["Workbook"]), "xls"),
        (cfb_bytes(["Book"]), "xls"),
        ("Plain text, with an em dash \u2014 and a tab\tand\r\nlines.\n".encode(), "text"),
        ("\ufeffText with a byte order mark".encode(), "text"),
    ],
)
def test_accepted_kinds_are_recognised_by_content(tmp_path, content, kind):
    """Every accepted kind is recognised from its bytes alone."""
    assert detect(write(tmp_path, content)).kind == kind


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (elf_bytes(), "program"),
        (pe_bytes(), "program"),
        (b"\xcf\xfa\xed\xfe" + b"\x00" * 60, "program"),
        (plain_zip(), "cannot be shared"),
        (odf_bytes("odg"), "cannot be shared"),
        (ooxml_bytes("docx", macros=True), "macros"),
        (cfb_bytes(["\x05SummaryInformation", "!_StringData"]), "cannot be shared"),  # an installer (.msi) looks so
        (b"PK\x03\x04" + b"\x00" * 100, "damaged"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "damaged"),
        ("caf\u00e9".encode("latin-1"), "cannot be shared"),  # not UTF-8
        (b"text with a NUL\x00 inside", "cannot be shared"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "cannot be shared"),
    ],
)
def test_other_kinds_and_programs_are_refused(tmp_path, content, reason):
    """Programs, plain zips, macro documents, other OLE2 files, damaged files and binary data are refused."""
    with pytest.raises(UnsupportedFile, match=reason):
        detect(write(tmp_path, content))


def test_text_starting_like_a_program_header_is_still_text(tmp_path):
    """ "MZ" at the start of an ordinary text file does not make it a program."""
    assert detect(write(tmp_path, b"MZ notes from the meeting\n")).kind == "text"


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (png_bytes(), "photo.docx"),
        (elf_bytes(), "report.pdf"),
        (pe_bytes(), "report.pdf"),
        (pdf_bytes(), "report.pdf.exe"),
        (ooxml_bytes("xlsx"), "figures.docx"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "logo.svg"),
        (b"<html><script>alert(1)</script></html>", "page.html"),
    ],
)
def test_names_that_say_another_kind_are_refused(tmp_path, content, name):
    """A name whose extension disagrees with the content (or a program named as a document) is refused."""
    with pytest.raises(UnsupportedFile):
        identify(write(tmp_path, content), name)


def test_a_mismatch_says_what_the_file_really_is(tmp_path):
    """The refusal tells the person what to do."""
    with pytest.raises(UnsupportedFile, match=r"ends in \.docx, but the file is a PNG image.*\.png"):
        identify(write(tmp_path, png_bytes()), "photo.docx")


def test_extensions_are_matched_without_case_and_jpeg_has_two(tmp_path):
    path = write(tmp_path, jpeg_bytes())
    assert identify(path, "Holiday.JPG") == (filetypes.TYPES["jpeg"], "Holiday.JPG")
    assert identify(path, "holiday.jpeg")[1] == "holiday.jpeg"


def test_a_name_without_extension_gets_the_detected_one(tmp_path):
    assert identify(write(tmp_path, pdf_bytes()), "annual report") == (filetypes.TYPES["pdf"], "annual report.pdf")


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.pdf", "y.pdf"),
        ("\\\\server\\share\\notes.txt", "notes.txt"),
        ("/var/www/../secret.pdf", "secret.pdf"),
        ("report\u202efdp.exe", "reportfdp.exe"),  # the right-to-left override that disguises .exe as .pdf
        ("bad\x00na\x07me\r\n.pdf", "badname.pdf"),
        ("zero\u200bwidth.pdf", "zerowidth.pdf"),
        ("  spaced   out  .pdf  ", "spaced out.pdf"),
        ('what?<is>:this|"*.pdf', "what__is__this___.pdf"),
        (".htaccess", "htaccess"),
        ("...", "file"),
        ("", "file"),
        ("CON.txt", "_CON.txt"),
        ("caf\u0065\u0301.txt", "caf\u00e9.txt"),  # NFC
    ],
)
def test_file_names_are_cleaned(given, cleaned):
    """No folders, control, format or direction characters, nothing Windows refuses."""
    assert clean_filename(given) == cleaned


def test_long_names_are_cut_keeping_the_extension():
    cleaned = clean_filename("a" * 500 + ".pdf")
    assert len(cleaned) <= filetypes.FILENAME_MAX and cleaned.endswith(".pdf")


def test_path_tricks_end_as_a_plain_name_with_the_right_extension():
    assert name_for("../../etc/passwd", filetypes.TYPES["text"]) == "passwd.txt"
    assert name_for("C:\\x\\y.pdf", filetypes.TYPES["pdf"]) == "y.pdf"
