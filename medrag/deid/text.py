"""De-identify free text (clinical notes, radiology reports) before it is stored, embedded or logged.

Why rules and not a library: both installable candidates were measured on the real notes in shared/data.
``philter-lite`` 0.6 cannot run offline (its detector calls ``nltk.pos_tag``, whose tagger model is a
download); with a stand-in tagger it is a whitelist filter that blanked "COVID-19", "ARDS", "parahilar" and
IU's "XXXX", changing 77% of covid notes and 13.5% of IU reports at ~80-100 notes/s. ``scrubadub`` 2.0
finds no names offline (TextBlob corpora are a download), no dates but birth dates, no MRNs and no ages,
and its e-mail detector turned "dyspnea at rest" into "{{EMAIL}}" (all 7 covid notes it changed were
false positives). So this is a rule-based scrubber (regexes and name cues, ~1,600 covid notes/s on one
core) that borrows one thing from philter-lite: its first-name / last-name / common-word lists, read as
data, to find "First Last" names without a cue and to tell names from ordinary capitalised words after
weak cues ("CC: Chest pain" is not a name).

Placeholders (``PLACEHOLDERS``): ``[NAME]`` people; ``[DATE]`` every date element finer than the year;
``[PHONE]`` phone, fax and pager numbers; ``[EMAIL]``; ``[URL]`` every web address; ``[ID]`` MRN,
accession, account, SSN and other record numbers and long digit runs; ``[ADDRESS]`` street addresses,
city + state + ZIP, ZIP codes, PO boxes; ``[AGE>89]`` ages of 90 and over (the number only, so
"92-year-old" becomes "[AGE>89]-year-old"); ``[INSTITUTION]`` named hospitals, clinics and other care
institutions ("Riverside General Hospital", "St. Mary's Hospital", "University of X Medical Center"), found by
the kind of institution that ends the name. Names are found after cues (honorifics, "signed by", "Patient:"),
before credentials ("MD"), in DICOM form, and without a cue as "First [M.] Last" or "Last, First" pairs from
the name lists.

All nine kinds are claimed, with recall measured on seeded synthetic notes by ``reliability/deid_validation.py``
(``docs/deid_validation.md``): 0.99 or more per kind is required, and met.

Deliberately kept:
- bare years ("in 2019", "COVID-2019"): HIPAA Safe Harbor allows the year alone, and years carry
  clinical meaning (history, outbreak timing). Years that reveal an age over 89 are the exception:
  a year after "born" / "DOB" is scrubbed.
- ages up to 89, measurements, vertebral levels, vitals, labs, doses, section headers.
- the IU reports' "XXXX": it is that corpus's own de-identification marker (it also hides non-PHI
  words, e.g. "x-XXXX" for x-ray), so it is left exactly as it is; already de-identified text passes
  through unchanged.
- medical eponyms (``EPONYMS``) are never taken for names, except right after an honorific ("Dr. Foley");
  ``keep_terms`` are never scrubbed at all, and win over ``extra_names``.
- cities without a street address or ZIP, and institutions named without their kind ("seen at Mercy"), are
  not detected (no gazetteer of places); nor are names without a cue that are not in the name lists.
- a name of generic words only ("Pulmonary Clinic", "the General Hospital") is no institution and stays.

The text is never logged and no exception message carries any of it.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

NAME = "[NAME]"
DATE = "[DATE]"
PHONE = "[PHONE]"
EMAIL = "[EMAIL]"
URL = "[URL]"
ID = "[ID]"
ADDRESS = "[ADDRESS]"
AGE = "[AGE>89]"
INSTITUTION = "[INSTITUTION]"

PLACEHOLDERS: tuple[str, ...] = (NAME, DATE, PHONE, EMAIL, URL, ID, ADDRESS, AGE, INSTITUTION)


def _wordset(words: str) -> frozenset[str]:
    """A set of whitespace-separated words, for the word lists below."""
    return frozenset(words.split())


# Medical eponyms and disease, device and sign names that look like person names; never scrubbed as names.
EPONYMS: frozenset[str] = _wordset(
    """
    addison alzheimer askin barrett behcet bernoulli blakemore bochdalek boerhaave broviac burkitt caplan
    castleman chamberlain cheyne chiba churg cobb conn crohn cushing danlos dobhoff down ebstein ehlers
    eisenmenger erdheim ewing fallot felty fleischner fleischer foley forestier ganz glasgow golden
    goodpasture gram graves groshong hamman hampton hashimoto heimlich hickman hodgkin horner hounsfield
    kaplan kaposi kartagener kerley kimura klebsiella klinefelter kommerell kussmaul langerhans legionella
    levin loeffler budd chiari dandy sachs sprague dawley wharton monte carlo
    luftsichel macklin macleod mallory marfan meier morgagni mounier kuhn mondor neelsen
    osler paget pancoast parkinson pickwickian pleurx poland pott quinton rankin raynaud rendu salem
    scheuermann schmorl sengstaken sjogren stokes still swan swyer tietze trousseau turner valsalva
    virchow weber wegener weiss westermark wilms windermere ziehl
    """
)

# Words that make a run of capitalised words a place or an institution, not a person.
_PLACE_WORDS: frozenset[str] = _wordset(
    """
    city town county province state district region village street road avenue hospital hospitals clinic
    clinics center centre university college institute school medical health healthcare infirmary foundation
    church park river lake lakes mount island airport station national general memorial regional community
    north south east west northern southern eastern western central new san santa st saint fort port upper
    lower great british organization organisation association society group company inc ltd gmbh press
    collection museum library
    """
)

# Words after a capitalised pair that make it an eponym, not a person: "Dandy Walker malformation".
_EPONYM_HEADS: frozenset[str] = _wordset(
    """
    syndrome disease sign signs lesion lesions line lines malformation variant anomaly scale score index test
    method procedure maneuver manoeuvre classification criteria rule law curve fracture deformity tumor tumour
    cyst cysts lymphoma sarcoma catheter tube rats mice threshold jelly operation repair technique view
    position projection triad phenomenon reflex effect equation formula stain type grade stage node nodes
    ligament duct space canal body bodies cell cells ring shunt valve pouch triangle questionnaire inventory
    schedule
    """
)

# Capitalised words that follow name cues in reports but are roles, departments or findings.
_NOT_NAMES: frozenset[str] = _wordset(
    """
    the a an and or of in on at to for with by from no not none unknown patient pt name attending
    resident fellow radiologist radiology physician doctor nurse technologist tech staff team service
    department dept unit clinic hospital center centre emergency er ed icu ccu pacu or final preliminary
    report reports addendum impression findings history comparison indication technique exam chest xray
    ct mri mr pa ap lateral portable page pager phone fax date time am pm unk self family dr mr mrs ms mx
    miss prof professor med mc arrow arrows arrowhead arrowheads christmas albino swiss
    """
)

_FULL_MONTHS = "(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_MONTH_ABBR = "(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)"
# A month name, title case or upper case; abbreviations may end in a dot ("Jan.", "SEPT").
_MONTHS = rf"(?:{_FULL_MONTHS}|{_FULL_MONTHS.upper()}|(?:{_MONTH_ABBR}|{_MONTH_ABBR.upper()})\.?)"
_WEEKDAY = (
    r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?"
    r"|(?:MON|TUES?|WED(?:NES)?|THU(?:RS)?|FRI|SAT(?:UR)?|SUN)(?:DAY)?)\.?,?\s+"
)
_DAY = r"(?:0?[1-9]|[12]\d|3[01])"
_DAY_ORD = rf"{_DAY}(?:st|nd|rd|th)?"
_MON_NUM = r"(?:0?[1-9]|1[0-2])"
_YEAR4 = r"(?:1[89]\d\d|20\d\d)"
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC"
    "|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
_STREET_SUFFIX = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|Terrace|Ter"
    "|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Trail|Trl|Plaza|Row|Crescent|Close"
)
_AGE_90 = r"(?:9\d|1[01]\d|12[0-5])"
_UP = "A-Z\u00c0-\u00d6\u00d8-\u00de"  # upper-case letters, Latin-1 included (José, Müller)
_LOW = "a-z\u00df-\u00f6\u00f8-\u00ff"  # lower-case letters, Latin-1 included
# One capitalised word: Smith, José, Smith-Jones, Ruiz-Uría, O'Connor, McAllister, Allen-O'Connor.
_CAP_WORD = rf"(?:[OD]['\u2019])?[{_UP}][{_LOW}]+(?:[{_UP}][{_LOW}]+)?(?:-(?:[OD]['\u2019])?[{_UP}][{_LOW}]+)?"
# One word of a person's name: Smith, O'Brien, Smith-Jones, McDonald, Allen-O'Connor, SMITH, O'BRIEN, or an
# initial (J or J.) but not the start of a dotted credential ("M.D."); not "'s". Each part has one way to
# match, so a long run that fails cannot backtrack exponentially.
_NAME_TOKEN = (
    rf"(?:(?:[OD]['\u2019])?[{_UP}][{_LOW}]+(?:[{_UP}][{_LOW}]+)?"
    rf"(?:(?:-(?:[OD]['\u2019])?|['\u2019](?!s\b))[{_UP}]?[{_LOW}]+(?:[{_UP}][{_LOW}]+)?)*"
    rf"|(?:[OD]['\u2019])?[{_UP}]{{2,}}(?:['\u2019-][{_UP}]{{2,}})*|(?!(?:M\.D|D\.O|R\.N|N\.P)\.)[{_UP}]\.?)"
    r"(?!\w|['\u2019-](?!s\b))"
)
_PARTICLES = _wordset("van von de del della da di du le la bin ibn al el ter ten dos das")
_PARTICLE = "(?:" + "|".join(sorted(_PARTICLES)) + ")"
# Up to four name words, joined by spaces, lower-case particles or (for "LAST, FIRST") a comma.
_NAME_SEQ = rf"{_NAME_TOKEN}(?:(?:[ \t]+|,[ \t]*)(?:{_PARTICLE}[ \t]+)?{_NAME_TOKEN}){{0,3}}"
# The same without commas, after an honorific ("Dr. Jane Smith, University of X" stops at the comma).
_NAME_SEQ_NO_COMMA = rf"{_NAME_TOKEN}(?:[ \t]+(?:{_PARTICLE}[ \t]+)?{_NAME_TOKEN}){{0,3}}"

# The kind of an institution, last in its name: "Hospital", "Medical Center", "Nursing Home".
_INSTITUTION_KIND = (
    r"(?:Hospital|Medical[ \t]+Cent(?:er|re)|Health[ \t]+(?:System|Cent(?:er|re))|Clinic|Infirmary"
    r"|Cancer[ \t]+Cent(?:er|re)|Rehabilitation[ \t]+Cent(?:er|re)|Nursing[ \t]+Home|Hospice|Sanatorium)"
)
_INSTITUTION_WORD = rf"[{_UP}][{_LOW}]+(?:['\u2019]s)?(?:-[{_UP}][{_LOW}]+)?"
# Named institutions: "Riverside General Hospital", "St. Mary's Hospital", "University of Lakeshore Medical Center".
_INSTITUTION_RE = re.compile(
    rf"(?<![\w'\u2019-])(?P<name>(?:(?:St\.?|Saint|Mount|Mt\.?)[ \t]+)?{_INSTITUTION_WORD}"
    rf"(?:[ \t]+{_INSTITUTION_WORD}){{0,4}}|University[ \t]+of[ \t]+{_INSTITUTION_WORD}"
    rf"(?:[ \t]+{_INSTITUTION_WORD}){{0,3}})[ \t]+{_INSTITUTION_KIND}(?![\w-])"
)
# Words that name a kind of institution or a service, not which one: "Pulmonary Clinic", "the General Hospital".
_INSTITUTION_GENERIC: frozenset[str] = _wordset(
    """
    the a an our this that same local outside private teaching tertiary referring nearby rural academic general
    memorial community regional university of children's childrens medical cancer veterans county city state
    pulmonary chest cardiology cardiac thoracic oncology radiology outpatient inpatient urgent care primary
    family medicine internal emergency surgical surgery sleep asthma tb tuberculosis lung heart walk-in main
    st saint mount mt day psychiatric mental rehabilitation specialty district field military
    """
)
# "Last, First [M.]" without a cue: "Smith, John", "BROWN, SIOBHAN A." (checked against the name lists).
_LAST_FIRST_RE = re.compile(
    rf"(?<![\w'\u2019-])(?P<last>{_NAME_TOKEN}),[ \t]+(?P<first>{_NAME_TOKEN})(?:[ \t]+[{_UP}]\.(?![\w-]))?"
)

# E-mail addresses.
_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# Web addresses (scheme or www.), without trailing sentence punctuation.
_URL_RE = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]]")
# Labelled record numbers: "MRN: 1234567", "MRN-1234567", "Acc# A12345", "account no. 99-12",
# "SSN 123456789" (the value has a digit).
_LABELLED_ID_RE = re.compile(
    r"(?P<label>\b(?:MRN|MR\s?#|medical\s+record(?:\s+(?:number|no\.?|num|#))?|(?:record|chart)\s+(?:number|no\.?|#)"
    r"|acc(?:ession)?(?:\s*(?:number|no\.?|num))?|acct|account(?:\s*(?:number|no\.?|num))?|SSN"
    r"|social\s+security(?:\s+(?:number|no\.?))?|(?:patient|pt)\s+id|PID|MPI|FIN|CSN|NPI|DEA"
    r"|encounter(?:\s+(?:id|number|no\.?))?|visit\s+(?:id|number|no\.?)|study\s+id|exam\s+(?:id|number|no\.?)"
    r"|(?:insurance|member|subscriber)\s+(?:id|number|no\.?)|policy\s+(?:number|no\.?)|ID)"
    r"(?![A-Za-z])\s*(?:#|no\.?|number)?\s*[:#=-]?\s*)"
    r"(?P<value>(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]{2,}\b)",
    re.IGNORECASE,
)
# US social security numbers written 123-45-6789.
_SSN_RE = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
# Labelled phone, fax and pager numbers, including short in-house extensions: "pager 4-1234", "fax: 555 0101".
_LABELLED_PHONE_RE = re.compile(
    r"(?P<label>\b(?:tel(?:ephone)?|phone|fax|pager|beeper|ext(?:ension)?|(?:cell|mobile|contact)(?:\s+(?:number|no\.?))?"
    r"(?=\s*[:#]))\.?\s*(?:#|no\.?|number)?\s*[:#]?\s*)"
    r"(?P<value>\+?\(?\d[\d().\s-]{2,17}\d(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?)(?![\d%])",
    re.IGNORECASE,
)
# North American numbers: (415) 555-0134, 415-555-0134, 415.555.0134, +1 415 555 0134, with an extension.
_PHONE_RE = re.compile(
    r"(?<![\w/.-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s*|\d{3}[.-]|\d{3}\s(?=\d{3}\s\d{4}))\d{3}[\s.-]\d{4}"
    r"(?:\s*(?:x|ext\.?|extension)\s*\d{1,6})?(?![\w/-])"
)
# International numbers with a leading "+" and at least 8 digits: +44 20 7946 0958.
_INTL_PHONE_RE = re.compile(r"(?<![\w+])\+(?=(?:[\s().-]*\d){8})\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){2,5}(?![\d%])")
# Dates with a month name, longest forms first: "Monday, January 22, 2020", "January 8 to 12", "22 Jan 2020",
# "12th of March", "April 6th", "Jan 2020", "November, 2019".
_DATE_WORDS_RE = re.compile(
    rf"(?<![\w-])(?:{_WEEKDAY})?(?:"
    rf"{_MONTHS}\s+{_DAY_ORD}(?!\d)(?:\s*(?:-|\u2013|to|through)\s*{_DAY_ORD}(?!\d))?"
    rf"(?:,?\s+(?:{_YEAR4}|'\d\d)(?!\d))?"
    rf"|{_DAY_ORD}(?:\s+of)?[\s-]+{_MONTHS}(?:,?[\s-]+(?:{_YEAR4}|'\d\d)(?!\d))?"
    rf"|{_MONTHS},?\s+(?:of\s+)?{_YEAR4}(?!\d)"
    r")(?![\w-])"
)
# Numeric dates with a year: 2020-01-22, 2020/01/22, 01/22/2020, 22-01-2020, 1/22/20, 22.01.2020.
_DATE_NUMERIC_RE = re.compile(
    rf"(?<![\w/.-])(?:{_YEAR4}(?P<s1>[-/.]){_MON_NUM}(?P=s1){_DAY}"
    rf"|{_DAY}(?P<s2>[-/]){_DAY}(?P=s2)(?:{_YEAR4}|\d\d)"
    rf"|{_DAY}\.{_DAY}\.{_YEAR4})(?![\w/-]|\.\d)"
)
# Month and year in digits: 03/2020, 3-2020.
_DATE_MONTH_YEAR_RE = re.compile(rf"(?<![\w/.-]){_MON_NUM}[/-]{_YEAR4}(?![\w/-]|\.\d)")
# Compact DICOM-style dates: 20200122.
_DATE_COMPACT_RE = re.compile(rf"(?<![\w.-]){_YEAR4}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\w-]|\.\d)")
# Day and month without a year, only after a cue so fractions and ratios stay: "on 3/3", "since 24/02".
_DATE_CUED_SHORT_RE = re.compile(
    rf"(?P<cue>\b(?:on|since|from|until|till|through|dated|date[:=]?)\s+){_DAY}/{_DAY}(?![\w/]|\.\d)",
    re.IGNORECASE,
)
# A month name alone after a time cue: "in March", "early December", "since February".
_DATE_CUED_MONTH_RE = re.compile(
    rf"(?P<cue>\b(?:[Ii]n|[Oo]n|[Ss]ince|[Dd]uring|[Uu]ntil|[Tt]ill|[Ff]rom|[Bb]y|[Ee]arly|[Mm]id|[Ll]ate"
    rf"|[Ee]nd of|[Bb]eginning of|[Ss]tart of)[\s-]+){_FULL_MONTHS}(?![\w-])"
)
# Birth dates and years of birth, whatever their form: "DOB: 1925", "born in 1931", "date of birth 3/4/31".
_BIRTH_RE = re.compile(
    r"(?P<cue>\b(?:DOB|D\.O\.B\.|date\s+of\s+birth|birth\s*date|born(?:\s+(?:on|in))?)\s*[:=]?\s*)"
    rf"(?P<value>{_YEAR4}[/.-]\d{{1,2}}[/.-]\d{{1,2}}(?!\d)|{_YEAR4}(?:\s*[-\u2013]\s*{_YEAR4})?(?!\d)"
    r"|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(?!\d))",
    re.IGNORECASE,
)
# Ages of 90 and over with a unit: "92-year-old", "95 yo", "91 y/o", "90 years of age", "101-yr-old".
_AGE_UNIT_RE = re.compile(
    rf"(?<![\w.,-]){_AGE_90}(?=[\s-]?(?:"
    r"(?:years?|yrs?|y)[\s-]*(?:old|of\s+age)\b|(?:yo|y/o|y\.o\.?|yr|yrs)(?![A-Za-z])"
    r"))",
    re.IGNORECASE,
)
# Ages of 90 and over as bare years: "Woman (92 years)"; not durations ("for 90 years", "95 years ago").
_AGE_YEARS_RE = re.compile(
    rf"(?<!for )(?<!over )(?<!past )(?<!last )(?<!than )(?<!within )(?<![\w.,-]){_AGE_90}"
    r"(?=[\s-]?years?\b(?!\s+(?:ago|later|before|after|earlier|previously)))",
    re.IGNORECASE,
)
# Labelled ages of 90 and over: "aged 95", "age: 91", "Age 93" (not "aged 90 days").
_AGE_LABEL_RE = re.compile(
    rf"(?P<cue>\bage[ds]?\s*(?:of\s+)?[:=]?\s*){_AGE_90}(?![\d.,]\d)(?!\s*(?:days?|d|weeks?|wks?|months?|mos?)\b)",
    re.IGNORECASE,
)
# Ages of 90 and over right after the sex: "Woman, 92, presented", "Male, 95 ...".
_AGE_SEX_RE = re.compile(
    rf"(?P<cue>\b(?:man|woman|male|female|gentleman|lady|patient)\s*,\s*){_AGE_90}(?=\s*[,;.)(]|\s+(?:with|who|and|has|was|is)\b)",
    re.IGNORECASE,
)
# Spelled-out ages of 90 and over: "ninety-two-year-old", "one hundred year old".
_AGE_WORDS_RE = re.compile(
    r"\b(?:ninety(?:[\s-](?:one|two|three|four|five|six|seven|eight|nine))?|one[\s-]hundred(?:[\s-]and)?"
    r"(?:[\s-](?:one|two|three|four|five))?)(?=[\s-]years?[\s-]old\b)",
    re.IGNORECASE,
)
# Street addresses, optionally with unit, city, state and ZIP: "1600 Main St., Apt 4B, Springfield, IL 62701".
_STREET_RE = re.compile(
    rf"(?<![\w.-])\d{{1,6}}(?:-\d{{1,4}})?[ \t]+(?:[NSEW]\.?[ \t]+)?"
    rf"(?:(?:[A-Z][a-z]+|\d{{1,3}}(?:st|nd|rd|th))[ \t]+){{1,4}}"
    rf"(?:{_STREET_SUFFIX})\b\.?"
    r"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Room|Rm|#)\.?[ \t]*#?[\w-]+)?"
    rf"(?:,[ \t]*[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){{0,2}})?(?:,?[ \t]*(?:{_STATES})\b)?(?:[ \t]+\d{{5}}(?:-\d{{4}})?\b)?"
)
# City, state and ZIP without a street: "San Francisco, CA 94143".
_CITY_ZIP_RE = re.compile(rf"\b[A-Z][a-z]+(?:[ \t][A-Z][a-z]+){{0,2}},[ \t]*(?:{_STATES})[ \t]+\d{{5}}(?:-\d{{4}})?\b")
# Post-office boxes: "P.O. Box 1234".
_PO_BOX_RE = re.compile(r"\bP\.?\s?O\.?\s+Box\s+\d+\b", re.IGNORECASE)
# Labelled ZIP codes: "ZIP: 94143", "zip code 94143-1234".
_ZIP_RE = re.compile(r"(?P<cue>\b(?:zip|postal)(?:\s*code)?\s*[:#]?\s*)(?P<value>\d{5}(?:-\d{4})?)\b", re.IGNORECASE)
# Long digit runs (7 or more) and letter-prefixed record numbers: 12345678, A1234567 (not drug codes: LY274614).
_LONG_NUMBER_RE = re.compile(r"(?<![\w.,-])(?:\d{7,}|[A-Z]{1,2}\d{7,})(?![\w]|[.,]\d)")
# DICOM person names: SMITH^JOHN^A, Doe^Jane.
_DICOM_NAME_RE = re.compile(r"(?<![\w^'\u2019-])[A-Za-z][A-Za-z'\u2019-]*(?:\^[A-Za-z'\u2019.-]*){1,4}")
# Honorifics, then the name: "Dr. Jane Smith", "Mrs O'Brien", "Prof. J. van der Berg".
_HONORIFIC_RE = re.compile(
    r"(?P<cue>\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Doctor|DR\.|MRS?\.|MS\.|PROF\.)\.?[ \t]+)"
    rf"(?P<name>{_NAME_SEQ_NO_COMMA})"
)
# Labels and phrases that introduce a name: "Patient name: DOE, JANE", "signed by John Smith", "cc: ...",
# "discussed with ...", "his wife Mary".
_NAME_CUE_RE = re.compile(
    r"(?P<cue>\b(?:"
    r"(?i:(?:patient(?:'s)?|pt)\s+name|name|patient|pt|cc|attending(?:\s+(?:physician|radiologist))?"
    r"|(?:referring|ordering|requesting)(?:\s+(?:physician|provider|doctor|clinician|md))?|physician|radiologist"
    r"|resident|fellow|technologist|tech|provider|pcp|primary\s+care(?:\s+(?:physician|provider))?|consultant"
    r"|surgeon|nurse|rn|contact|next\s+of\s+kin|nok|emergency\s+contact|guardian|signature|signed)\s*:"
    r"|(?i:(?:electronically\s+|e-)?signed\s+by|dictated\s+by|transcribed\s+by|reviewed\s+by|read\s+by"
    r"|verified\s+by|approved\s+by|reported\s+by|interpreted\s+by|prepared\s+by|seen\s+by|discussed\s+with"
    r"|spoke\s+(?:with|to)|spoken\s+to|d/w|notified|paged)"
    r"|(?:[Hh]is|[Hh]er|[Tt]heir|[Tt]he\s+patient's)\s+(?:wife|husband|son|daughter|mother|father|brother|sister"
    r"|partner|spouse|friend|caregiver|niece|nephew|grandson|granddaughter)"
    r")[ \t]*[,:]?[ \t]*)(?P<name>" + _NAME_SEQ + ")"
)
# A name followed by a credential: "John A. Smith, MD", "Jane Doe RN", "Ravi Patel, M.D., PhD".
_CREDENTIAL_RE = re.compile(
    rf"(?<![\w'\u2019-])(?P<name>{_NAME_TOKEN}(?:[ \t]+(?:{_PARTICLE}[ \t]+)?{_NAME_TOKEN}){{0,3}})(?P<cred>,?[ \t]+"
    r"(?:M\.D\.|MD|D\.O\.|R\.N\.|RN|N\.P\.|NP|PA-C|Ph\.D\.|PhD|MBBS|FRCR|FRCPC|MRCP|DNP|CRNA|RRT)(?![\w-]))"
)
# Capitalised words, to look up adjacent pairs in the first-name / last-name gazetteer.
_CAP_WORD_RE = re.compile(rf"(?<![\w'\u2019-]){_CAP_WORD}(?![\w'\u2019-])")
# A run of capitalised words (and middle initials) separated by spaces, with the words just before and after:
# "Mary J. Smith", "Ho Chi Minh City". Every optional part is anchored at a word start, so matching stays linear.
_CAP_RUN_RE = re.compile(
    r"(?:(?<![\w.])(?P<before>[\w.]+)[ \t]+)?"
    rf"(?<![\w'\u2019-])(?P<run>{_CAP_WORD}(?:[ \t]+(?:[{_UP}]\.?[ \t]+)?{_CAP_WORD})+)"
    rf"(?![\w'\u2019-])(?P<after>[ \t]+[\w]+)?"
)
# Splits a known name ("SMITH^JOHN", "Smith, John A.") into its words.
_NAME_SPLIT_RE = re.compile(r"[\s,^]+")
# A middle initial with its dot: "A." (without the dot "A" may be the article).
_INITIAL_RE = re.compile(rf"[{_UP}]\.")
# A word made only of X: the IU corpus's own de-identification marker.
_XXXX_RE = re.compile(r"X{2,}")
# The words of a matched name sequence.
_WORD_RE = re.compile(r"[^\s,]+")


@dataclass(frozen=True)
class _Gazetteer:
    """First names, last names and common non-name words (philter-lite's lists, all lowercase)."""

    first: frozenset[str]
    last: frozenset[str]
    common: frozenset[str]


@functools.cache
def _gazetteer() -> _Gazetteer:
    """Load philter-lite's word lists once per process (about 1 s, 50 MB); the package is not imported."""
    spec = importlib.util.find_spec("philter_lite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("text de-identification needs the philter-lite package for its name lists")
    path = Path(next(iter(spec.submodule_search_locations))) / "filters" / "set.toml"
    with path.open("rb") as handle:
        lists = tomllib.load(handle)
    return _Gazetteer(
        first=frozenset(lists["firstnames"]), last=frozenset(lists["lastnames"]), common=frozenset(lists["nonames"])
    )


@dataclass(frozen=True)
class ScrubResult:
    """Scrubbed text and how many values of each placeholder kind were replaced (never the values)."""

    text: str
    counts: dict[str, int]


class TextScrubber:
    """Replace PHI in free text with the placeholders of ``PLACEHOLDERS``; idempotent, deterministic."""

    def __init__(self, *, extra_names: Iterable[str] = (), keep_terms: Iterable[str] = ()) -> None:
        """``extra_names``: known names (e.g. from a DICOM header) always scrubbed, as a whole and word by word
        (words that are eponyms or keep terms only as part of the whole name); ``keep_terms``: never scrubbed.
        """
        self._gaz = _gazetteer()
        self._keep = frozenset(term.lower() for term in keep_terms if term.strip())
        self._not_names = self._keep | EPONYMS | _NOT_NAMES
        terms = sorted({term.strip() for term in keep_terms if term.strip()}, key=len, reverse=True)
        # keep_terms as whole words, masked before scrubbing and restored after.
        self._keep_re = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
            if terms
            else None
        )
        self._extra_re = self._compile_extra_names(extra_names)

    def __call__(self, text: str) -> ScrubResult:
        """Scrub one text; the counts say how many values of each kind were replaced."""
        counts: dict[str, int] = {}
        masked, kept = self._mask_keep_terms(text)

        out = masked
        if self._extra_re is not None:
            out = _sub(self._extra_re, NAME, out, counts)
        out = _sub(_EMAIL_RE, EMAIL, out, counts)
        out = _sub(_URL_RE, URL, out, counts)
        out = self._sub_institutions(out, counts)
        out = _sub(_LABELLED_ID_RE, ID, out, counts, group="value")
        out = _sub(_SSN_RE, ID, out, counts)
        out = _sub(_LABELLED_PHONE_RE, PHONE, out, counts, group="value")
        out = _sub(_PHONE_RE, PHONE, out, counts)
        out = _sub(_INTL_PHONE_RE, PHONE, out, counts)
        out = _sub(_STREET_RE, ADDRESS, out, counts)
        out = _sub(_CITY_ZIP_RE, ADDRESS, out, counts)
        out = _sub(_PO_BOX_RE, ADDRESS, out, counts)
        out = _sub(_ZIP_RE, ADDRESS, out, counts, group="value")
        out = _sub(_BIRTH_RE, DATE, out, counts, group="value")
        out = _sub(_DATE_WORDS_RE, DATE, out, counts)
        out = _sub(_DATE_NUMERIC_RE, DATE, out, counts)
        out = _sub(_DATE_COMPACT_RE, DATE, out, counts)
        out = _sub(_DATE_MONTH_YEAR_RE, DATE, out, counts)
        out = _sub_after_cue(_DATE_CUED_SHORT_RE, DATE, out, counts)
        out = _sub_after_cue(_DATE_CUED_MONTH_RE, DATE, out, counts)
        out = _sub(_AGE_UNIT_RE, AGE, out, counts)
        out = _sub(_AGE_YEARS_RE, AGE, out, counts)
        out = _sub(_AGE_WORDS_RE, AGE, out, counts)
        out = _sub_after_cue(_AGE_LABEL_RE, AGE, out, counts)
        out = _sub_after_cue(_AGE_SEX_RE, AGE, out, counts)
        out = _sub(_LONG_NUMBER_RE, ID, out, counts)
        out = _sub(_DICOM_NAME_RE, NAME, out, counts)
        out = self._sub_names(_HONORIFIC_RE, out, counts, honorific=True)
        out = self._sub_names(_NAME_CUE_RE, out, counts, honorific=False)
        out = self._sub_credentialed(out, counts)
        out = self._sub_first_last(out, counts)
        out = self._sub_last_comma_first(out, counts)
        for token, term in kept.items():
            out = out.replace(token, term)
        return ScrubResult(text=out, counts=counts)

    def _mask_keep_terms(self, text: str) -> tuple[str, dict[str, str]]:
        """Swap keep terms for private-use sentinels that no pattern can match."""
        if self._keep_re is None:
            return text, {}
        kept: dict[str, str] = {}

        def mask(match: re.Match[str]) -> str:
            token = "\ue000" + "".join(chr(0xE100 + int(d)) for d in str(len(kept))) + "\ue001"
            kept[token] = match.group(0)
            return token

        return self._keep_re.sub(mask, text), kept

    def _compile_extra_names(self, extra_names: Iterable[str]) -> re.Pattern[str] | None:
        """One pattern for the known names: whole names (either word order, any case), then single words."""
        wholes: set[str] = set()
        words: set[str] = set()
        for raw in extra_names:
            parts = [p.strip(".") for p in _NAME_SPLIT_RE.split(raw) if len(p.strip(".")) > 1]
            if not parts:
                continue
            if len(parts) == 1:
                words.add(parts[0])
                continue
            for order in (parts, parts[::-1]):
                wholes.add(r"[\s,^]+".join(re.escape(p) for p in order))
            words.update(p for p in parts if p.lower() not in self._keep | EPONYMS)
        if not wholes and not words:
            return None
        word_forms = {form for w in words for form in (w, w.title(), w.upper(), w.lower().title())}
        alternatives = [f"(?i:{w})" for w in sorted(wholes, key=len, reverse=True)]
        alternatives += [re.escape(w) for w in sorted(word_forms, key=len, reverse=True)]
        return re.compile(r"(?<![\w\[])(?:" + "|".join(alternatives) + r")(?![\w\]])")

    def _is_name_word(self, word: str, *, honorific: bool) -> bool:
        """Whether a capitalised word after a cue is part of a name, not a role, place, eponym or ordinary word.

        After an honorific any other word counts ("Dr. Foley" is a person); after weaker cues the word must
        be in the name lists or not be a common word.
        """
        if _INITIAL_RE.fullmatch(word):
            return True  # "A." in "Wei A. Wright": an initial, not the article
        low = word.rstrip(".").lower()
        if _XXXX_RE.fullmatch(word.rstrip(".")) or low in self._keep or low in _NOT_NAMES or low in _PLACE_WORDS:
            return False
        if len(low) == 1:
            return True
        if honorific:
            return True
        if low in EPONYMS:
            return False
        return low in self._gaz.first or low in self._gaz.last or low not in self._gaz.common

    def _name_prefix_end(self, name: str, *, honorific: bool) -> int:
        """Length of the leading run of name words in ``name``; 0 unless it holds a word longer than an initial.

        After a weak cue a sequence holding a place or institution word is no name ("reported by World Health
        Organization").
        """
        words = _WORD_RE.findall(name)
        if not honorific and any(w.lower() in _PLACE_WORDS for w in words):
            return 0
        end = 0
        has_full_word = False
        for token in _WORD_RE.finditer(name):
            word = token.group(0)
            if word in _PARTICLES:
                continue
            if not self._is_name_word(word, honorific=honorific):
                break
            end = token.end()
            has_full_word = has_full_word or len(word.rstrip(".")) > 1
        return end if has_full_word else 0

    def _sub_names(self, pattern: re.Pattern[str], text: str, counts: dict[str, int], *, honorific: bool) -> str:
        """Replace the name words that follow a cue; the cue itself stays."""

        def repl(match: re.Match[str]) -> str:
            name = match.group("name")
            end = self._name_prefix_end(name, honorific=honorific)
            if not end:
                return match.group(0)
            counts[NAME] = counts.get(NAME, 0) + 1
            return match.group("cue") + NAME + name[end:]

        return pattern.sub(repl, text)

    def _sub_credentialed(self, text: str, counts: dict[str, int]) -> str:
        """Replace the name words right before a credential ("Jane Doe, MD"), walking left from it."""

        def repl(match: re.Match[str]) -> str:
            name = match.group("name")
            start = len(name)
            for word in reversed(list(_WORD_RE.finditer(name))):
                if word.group(0) in _PARTICLES:
                    continue
                if not self._is_name_word(word.group(0), honorific=False):
                    break
                start = word.start()
            if len(name[start:].rstrip(".")) < 2:
                return match.group(0)
            counts[NAME] = counts.get(NAME, 0) + 1
            return name[:start] + NAME + match.group("cred")

        return _CREDENTIAL_RE.sub(repl, text)

    def _sub_first_last(self, text: str, counts: dict[str, int]) -> str:
        """Replace "First [M.] Last [Last2]" found in the gazetteer without a cue.

        Both words must be in the name lists, neither an eponym, role or keep term, and not both ordinary
        words ("Mark Green" stays: too many false positives otherwise). A run of capitalised words is left
        alone when it holds or follows a place or institution word ("Ho Chi Minh City", "San Raffaele Hospital",
        "St. Louis"), or names a sign, syndrome or scale ("Dandy Walker malformation").
        """
        gaz = self._gaz
        spans: list[tuple[int, int]] = []
        for match in _CAP_RUN_RE.finditer(text):
            words = list(_CAP_WORD_RE.finditer(match.group("run")))
            before = (match.group("before") or "").rstrip(".").lower()
            after = (match.group("after") or "").strip().lower()
            lows = [_lookup_form(w.group(0)) for w in words]
            if any(w in _PLACE_WORDS or w in _EPONYM_HEADS for w in lows) or before in _PLACE_WORDS:
                continue
            if after in _PLACE_WORDS or after in _EPONYM_HEADS:
                continue
            offset = match.start("run")
            index = floor = 0
            while index < len(words) - 1:
                a, b = lows[index], lows[index + 1]
                if (
                    a in gaz.first
                    and all(part in gaz.last for part in b.split("-"))
                    and not (a in gaz.common and b in gaz.common)
                    and not any(w in self._not_names for w in (a, *b.split("-")))
                ):
                    start, end = index, index + 1
                    while start > floor and self._is_first_name(lows[start - 1]):
                        start -= 1
                    while end + 1 < len(words) and self._is_surname(lows[end + 1]):
                        end += 1
                    spans.append((offset + words[start].start(), offset + words[end].end()))
                    index = floor = end + 1
                else:
                    index += 1
        for start, end in reversed(spans):
            text = text[:start] + NAME + text[end:]
        if spans:
            counts[NAME] = counts.get(NAME, 0) + len(spans)
        return text

    def _sub_institutions(self, text: str, counts: dict[str, int]) -> str:
        """Replace named institutions; a name made only of generic words ("Pulmonary Clinic") is no one's."""

        def repl(match: re.Match[str]) -> str:
            words = [w.lower() for w in _WORD_RE.findall(match.group("name"))]
            if all(w.rstrip(".") in _INSTITUTION_GENERIC or w in self._keep for w in words):
                return match.group(0)
            counts[INSTITUTION] = counts.get(INSTITUTION, 0) + 1
            return INSTITUTION

        return _INSTITUTION_RE.sub(repl, text)

    def _sub_last_comma_first(self, text: str, counts: dict[str, int]) -> str:
        """Replace "Last, First" when the first word is a surname and the second a first name of the lists,
        neither an eponym, role or keep term, and not both ordinary words ("Brown, Mark" stays) unless written
        in capitals ("BROWN, MARY": the header form of a name)."""
        gaz = self._gaz

        def repl(match: re.Match[str]) -> str:
            last, first = _lookup_form(match.group("last")), _lookup_form(match.group("first"))
            parts = last.split("-")
            if (
                min(len(last), len(first)) < 2
                or not all(part in gaz.last for part in parts)
                or first not in gaz.first
                or (last in gaz.common and first in gaz.common and not match.group(0).isupper())
                or any(w in self._not_names or w in _PLACE_WORDS for w in (first, *parts))
            ):
                return match.group(0)
            counts[NAME] = counts.get(NAME, 0) + 1
            return NAME

        return _LAST_FIRST_RE.sub(repl, text)

    def _is_surname(self, low: str) -> bool:
        """Whether a capitalised word right after a detected name is more of it ("Mary Smith Jones")."""
        return low not in self._not_names and (low in self._gaz.last or low not in self._gaz.common)

    def _is_first_name(self, low: str) -> bool:
        """Whether a capitalised word right before a detected name is a first name ("Jens Lorenz Franzen")."""
        return low not in self._not_names and low in self._gaz.first and low not in self._gaz.common


def _lookup_form(word: str) -> str:
    """A word as the name lists spell it: lower case, without apostrophes ("O'Connor" is "oconnor")."""
    return word.lower().replace("'", "").replace("\u2019", "")


def _sub(pattern: re.Pattern[str], placeholder: str, text: str, counts: dict[str, int], group: str = "") -> str:
    """Replace group ``group`` (default: the whole match) of every match with ``placeholder``."""

    def repl(match: re.Match[str]) -> str:
        whole = match.group(0)
        start, end = match.span(group) if group else match.span()
        start, end = start - match.start(), end - match.start()
        counts[placeholder] = counts.get(placeholder, 0) + 1
        return whole[:start] + placeholder + whole[end:]

    return pattern.sub(repl, text)


def _sub_after_cue(pattern: re.Pattern[str], placeholder: str, text: str, counts: dict[str, int]) -> str:
    """Replace what follows group ``cue`` in each match with ``placeholder``; the cue stays."""

    def repl(match: re.Match[str]) -> str:
        counts[placeholder] = counts.get(placeholder, 0) + 1
        return match.group("cue") + placeholder

    return pattern.sub(repl, text)


@functools.cache
def _default_scrubber() -> TextScrubber:
    return TextScrubber()


def scrub_text(text: str) -> str:
    """Scrub ``text`` with the default scrubber (no known names, no extra keep terms)."""
    return _default_scrubber()(text).text
