"""Common Transfer File: export of included sections as CTF XML, validation, and import.

Only what a sharing decision allowed is written: the identifiers (UPN, names, date of
birth) make a `Pupil`; attendance and ALN appear only where they were included. The
child-protection section is never written to a CTF (it moves DSL to DSL only).
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from importlib.resources import files

from lxml import etree

from .domain import school_code

CTF_VERSION = "25.0"
SUPPLIER = "Pont"
SEN_PROVISION = {"has_aln": "ALN", "no_aln": "N", "pending": "P"}


class CtfInvalid(Exception):
    """A CTF document that does not validate against the schema Pont keeps."""


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    source = files("transitions").joinpath("ctf.xsd").read_bytes()
    return etree.XMLSchema(etree.fromstring(source))


def _text(parent, tag: str, value) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = str(value)
    return element


def _school(parent, tag: str, org: str, academic_year: int | None = None) -> None:
    la, estab = school_code(org)
    school = etree.SubElement(parent, tag)
    _text(school, "LEA", la)
    _text(school, "Estab", estab)
    if academic_year is not None:
        _text(school, "AcademicYear", academic_year)


def export(from_school: str, to_school: str, pupils: list[dict], now: datetime) -> bytes:
    """A CTF document for `pupils` (each a dict of included sections with `identifiers`)."""
    root = etree.Element("CTfile")
    header = etree.SubElement(root, "Header")
    _text(header, "DocumentName", "Common Transfer File")
    _text(header, "CTFversion", CTF_VERSION)
    _text(header, "DateTime", now.replace(microsecond=0).isoformat())
    _text(header, "DocumentQualifier", "full")
    _text(header, "SupplierID", SUPPLIER)
    _school(header, "SourceSchool", from_school, now.year)
    _school(header, "DestSchool", to_school)
    data = etree.SubElement(root, "CTFpupilData")
    for sections in pupils:
        _pupil(data, sections)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    validate(document)
    return document


def _pupil(parent, sections: dict) -> None:
    ident = sections["identifiers"]
    pupil = etree.SubElement(parent, "Pupil")
    _text(pupil, "UPN", ident["upn"])
    _text(pupil, "Surname", ident["family_name"])
    _text(pupil, "Forename", ident["given_name"])
    _text(pupil, "DOB", ident["date_of_birth"])
    if ident.get("gender"):
        _text(pupil, "Gender", ident["gender"])
    attendance = sections.get("attendance")
    if attendance is not None:
        year = etree.SubElement(etree.SubElement(pupil, "Attendance"), "YearData")
        _text(year, "Year", attendance["year"])
        _text(year, "SessionsPossible", attendance["sessions_possible"])
        _text(year, "SessionsAuthorised", attendance["sessions_authorised"])
        _text(year, "SessionsUnauthorised", attendance["sessions_unauthorised"])
    aln = sections.get("aln")
    if aln is not None:
        sen = etree.SubElement(etree.SubElement(pupil, "SENhistory"), "SEN")
        _text(sen, "SENprovision", SEN_PROVISION[aln["decision_outcome"]])
        welsh = etree.SubElement(etree.SubElement(pupil, "WelshDetails"), "ALN")
        _text(welsh, "ALNDecision", aln["decision_outcome"])
        if aln.get("idp"):
            _text(etree.SubElement(welsh, "IDP"), "MaintainedBy", aln["idp"]["maintained_by"])
        if aln.get("areas_of_need"):
            areas = etree.SubElement(welsh, "AreasOfNeed")
            for area in aln["areas_of_need"]:
                _text(areas, "AreaOfNeed", area)
        if aln.get("review_date"):
            _text(welsh, "ReviewDate", aln["review_date"])


def validate(document: bytes) -> etree._Element:
    """Parse and validate against Pont's CTF schema; `CtfInvalid` with the first errors if not."""
    try:
        root = etree.fromstring(document, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise CtfInvalid(f"not well-formed XML: {exc}") from exc
    if not schema().validate(root):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in list(schema().error_log)[:5])
        raise CtfInvalid(errors)
    return root


def import_(document: bytes) -> dict:
    """The header and each pupil's sections, as they were exported."""
    root = validate(document)
    header = root.find("Header")

    def school(tag: str) -> str:
        node = header.find(tag)
        return f"school:{node.findtext('LEA')}{node.findtext('Estab')}"

    pupils = [_read_pupil(node) for node in root.find("CTFpupilData").findall("Pupil")]
    return {"from_school": school("SourceSchool"), "to_school": school("DestSchool"), "pupils": pupils}


def _read_pupil(node) -> dict:
    identifiers = {
        "upn": node.findtext("UPN"), "given_name": node.findtext("Forename"),
        "family_name": node.findtext("Surname"), "date_of_birth": node.findtext("DOB"),
    }
    if node.find("Gender") is not None:
        identifiers["gender"] = node.findtext("Gender")
    sections: dict = {"identifiers": identifiers}
    year = node.find("Attendance/YearData")
    if year is not None:
        sections["attendance"] = {
            "year": int(year.findtext("Year")),
            "sessions_possible": int(year.findtext("SessionsPossible")),
            "sessions_authorised": int(year.findtext("SessionsAuthorised")),
            "sessions_unauthorised": int(year.findtext("SessionsUnauthorised")),
        }
    aln_node = node.find("WelshDetails/ALN")
    if aln_node is not None:
        aln: dict = {"decision_outcome": aln_node.findtext("ALNDecision"),
                     "areas_of_need": [a.text for a in aln_node.findall("AreasOfNeed/AreaOfNeed")]}
        if aln_node.find("IDP") is not None:
            aln["idp"] = {"maintained_by": aln_node.findtext("IDP/MaintainedBy")}
        if aln_node.find("ReviewDate") is not None:
            aln["review_date"] = aln_node.findtext("ReviewDate")
        sections["aln"] = aln
    return sections


CTF_SECTIONS = ("identifiers", "attendance", "aln")


def ctf_sections(included_content: dict) -> dict:
    """The part of a record's included content that a CTF carries."""
    return {name: included_content[name] for name in CTF_SECTIONS if name in included_content}
