"""Node functions of the contract-review demo: pure Python, stdlib only.

Module layout (this is what makes ``@offload`` work, keep it):

* ``clauses.py`` (this module) holds every node function and the text/rule code they use. It
  imports **only the standard library and** ``from subiso import offload``. That keeps it
  loadable inside an own-GIL subinterpreter, where langgraph, pydantic-core and msgspec refuse to
  load. In hybrid mode SubinterpreterExecutor imports this module inside its interpreters and runs
  :func:`split_clauses` (the CPU-bound node, decorated with ``@offload``) there, in parallel with
  other runs.
* ``graph.py`` imports langgraph and wires these functions into a ``StateGraph``. It never loads
  in a subinterpreter, and it does not need to.
* ``examples/__init__.py`` and ``examples/contract_review/__init__.py`` import nothing, so that
  importing ``examples.contract_review.clauses`` does not drag langgraph in through a package.

Everything that goes in or out of a node is JSON-like (str/int/float/bool/list/dict with string
keys), so the state can be encoded and cross process and interpreter boundaries unchanged. All
output is deterministic (no set or hash ordering leaks into it, floats are rounded) so runs in
different tiers and processes produce equal results.

The flow:

1. :func:`split_clauses` (sync, CPU-bound, ``@offload``): takes ``{"text": ...}`` or
   ``{"path": ...}``, normalises the text, segments it into numbered clauses, and computes
   per-clause features (sentences, tokens, stems, keyword hits per risk category, durations,
   percentages, money amounts, cross references, readability, TF-IDF top terms and the most
   similar other clause).
2. :func:`score_clauses` (async): fans out one coroutine per clause with ``asyncio.gather`` and
   applies the risk rules. :func:`score_clauses_sync` is the same work for ``graph.invoke``
   (LangGraph refuses to run an async-only node from the sync API).
3. :func:`aggregate_report` (sync): overall risk level and score, counts per level and per
   category, top risky clauses, expected protections the contract lacks.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from subiso import offload

# --------------------------------------------------------------------------------------------
# State schema (JSON-like only)
# --------------------------------------------------------------------------------------------


class Clause(TypedDict):
    """One numbered clause and its features, produced by :func:`split_clauses`."""

    id: str  # "11.3"; a section without sub-clauses uses its own number, e.g. "7"
    index: int  # position in the contract, 0-based
    section: str  # "11"
    section_title: str  # "Limitation Of Liability"
    heading: str  # "Customer's Liability" (empty when the clause has no run-in heading)
    text: str  # normalised clause text, heading included
    word_count: int
    sentence_count: int
    readability: float  # Flesch reading ease
    keywords: dict[str, int]  # risk category -> cue-word hits
    top_terms: list[str]  # highest TF-IDF stems
    durations_days: list[int]  # every "N days/months/years" converted to days
    percentages: list[float]
    money: list[float]
    references: list[str]  # "Section 10.1" -> "10.1"
    related: str  # id of the most similar other clause, "" when none is similar enough


class Finding(TypedDict):
    """The risk verdict for one clause, produced by :func:`score_clauses`."""

    clause_id: str
    heading: str
    score: float  # 0-10
    level: str  # "high" | "medium" | "low" | "none"
    categories: list[str]
    rules: list[str]
    reasons: list[str]
    excerpt: str


class Report(TypedDict):
    """The aggregate produced by :func:`aggregate_report`."""

    title: str
    parties: list[str]
    clause_count: int
    word_count: int
    overall_risk: str  # "high" | "medium" | "low" | "none"
    risk_score: float  # 0-100: mean of the five highest clause scores x 10
    counts_by_level: dict[str, int]  # always high, medium, low, none
    counts_by_category: dict[str, int]  # flagged clauses per rule category
    top_risks: list[Finding]  # up to five, highest score first
    missing_protections: list[str]


class ReviewInput(TypedDict, total=False):
    """What a caller passes: the contract ``text``, or a ``path`` to a UTF-8 text file."""

    text: str
    path: str


class ReviewOutput(TypedDict, total=False):
    """What the graph returns."""

    title: str
    findings: list[Finding]
    report: Report


class ContractState(TypedDict, total=False):
    """The full graph state: input keys, intermediate ``clauses``, and the outputs."""

    text: str
    path: str
    title: str
    parties: list[str]
    clauses: list[Clause]
    findings: list[Finding]
    report: Report


LEVELS = ("high", "medium", "low", "none")
TOP_N = 5
EXCERPT_CHARS = 160

# --------------------------------------------------------------------------------------------
# Text normalisation and segmentation
# --------------------------------------------------------------------------------------------

_PUNCT_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
        "\u2022": "-",
    }
)
_PAGE_FURNITURE = re.compile(r"^\s*(page \d+( of \d+)?|confidential|- ?\d+ ?-)\s*$", re.IGNORECASE)
_SECTION = re.compile(r"^(?:ARTICLE\s+)?(\d{1,3})\.?\s+([A-Z][A-Z0-9 ,&'/\-]{2,})$")
_CLAUSE = re.compile(r"^(\d{1,3}(?:\.\d{1,3})+)\.?\s+(\S.*)$")
_END_MARKERS = re.compile(r"^\s*IN WITNESS WHEREOF", re.IGNORECASE)
_RUN_IN_HEADING = re.compile(
    r"^([A-Z][\w'\-]*(?:\s+(?:[A-Z][\w'\-]*|of|for|by|and|the|to|on))*)\.\s+"
)
_PARTY = re.compile(r'\(\s*"([A-Z][A-Za-z ]+)"\s*\)')

_ABBREVIATION_TEXT = (
    "e.g i.e etc inc ltd llc co corp no nos art sec mr mrs ms dr st vs u.s u.k approx"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
_SENTENCE_END = re.compile(r'([.!?])(["\')]?)\s+(?=["(]?[A-Z0-9])')
_WORD = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]")
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty-five": 45,
    "sixty": 60,
    "ninety": 90,
}
_DURATION = re.compile(
    r"(?:\b([a-z\-]+)\s+\((\d+)\)|\b(\d+))\s+(business\s+days?|days?|months?|years?)",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:%|percent)", re.IGNORECASE)
_MONEY = re.compile(r"(?:[$\u00a3\u20ac]|usd\s?|gbp\s?|eur\s?)(\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
_REFERENCE = re.compile(r"\bSections?\s+(\d{1,3}(?:\.\d{1,3})*)")

_STOPWORD_TEXT = """a about above after again against all an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself may me more
    most must my no nor not of off on once only or other our out over own same shall she should
    so some such than that the their them then there these they this those through to too under
    until up upon very was we were what when where which while who whom why will with within
    would you your such any each other hereby herein hereof thereof thereto"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Cue words per risk category; stemmed at import so they match stemmed tokens.
_CATEGORY_CUES: dict[str, tuple[str, ...]] = {
    "liability": ("liability", "liable", "damages", "consequential", "indirect", "exceed", "cap"),
    "indemnity": ("indemnify", "indemnification", "defend", "harmless", "claims"),
    "renewal": ("renew", "renewal", "automatically", "successive", "expiry"),
    "termination": ("terminate", "termination", "convenience", "cure", "insolvent"),
    "payment": ("fees", "invoice", "payment", "interest", "pay", "price", "taxes", "expenses"),
    "confidentiality": ("confidential", "confidentiality", "disclose", "disclosure", "secret"),
    "data_protection": ("data", "personal", "breach", "security", "processing", "anonymised"),
    "ip": ("intellectual", "property", "title", "licence", "license", "assigns", "ownership"),
    "warranty": ("warrants", "warranty", "warranties", "merchantability", "fitness"),
    "governing_law": ("governed", "laws", "jurisdiction", "courts", "jury", "arbitration"),
    "restrictive_covenant": ("solicit", "hire", "exclusive", "competitor", "compete"),
    "service": ("suspend", "suspension", "available", "service", "credits", "maintenance"),
}


def _stem(word: str) -> str:
    """A compact suffix-stripping stemmer (Porter-style steps 1-3, simplified)."""
    if len(word) <= 3:
        return word
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, repl in (("sses", "ss"), ("ies", "i"), ("ss", "ss"), ("s", "")):
        if word.endswith(suffix):
            word = word[: -len(suffix)] + repl
            break
    for suffix in ("edly", "ingly", "ing", "ed"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            word = word[: -len(suffix)]
            if word.endswith(("at", "bl", "iz")):
                word += "e"
            elif len(word) > 2 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("y") and _has_vowel(word[:-1]) and len(word) > 3:
        word = word[:-1] + "i"
    for suffix, repl in (
        ("ational", "ate"),
        ("tional", "tion"),
        ("ization", "ize"),
        ("isation", "ise"),
        ("fulness", "ful"),
        ("iveness", "ive"),
        ("ousness", "ous"),
        ("ability", "able"),
        ("ibility", "ible"),
        ("ation", "ate"),
        ("ement", ""),
        ("ment", ""),
        ("ness", ""),
        ("ence", ""),
        ("ance", ""),
        ("able", ""),
        ("ible", ""),
        ("ity", ""),
        ("ive", ""),
        ("ize", ""),
        ("ise", ""),
        ("al", ""),
        ("er", ""),
        ("ly", ""),
    ):
        if word.endswith(suffix) and _measure(word[: -len(suffix)]) > 0:
            return word[: -len(suffix)] + repl
    return word


def _has_vowel(stem: str) -> bool:
    return any(ch in "aeiouy" for ch in stem)


def _measure(stem: str) -> int:
    """Porter's m: the number of vowel-consonant sequences in ``stem``."""
    m = 0
    prev_vowel = False
    for ch in stem:
        vowel = ch in "aeiou"
        if prev_vowel and not vowel:
            m += 1
        prev_vowel = vowel
    return m


def _syllables(word: str) -> int:
    count = 0
    prev_vowel = False
    for ch in word:
        vowel = ch in "aeiouy"
        if vowel and not prev_vowel:
            count += 1
        prev_vowel = vowel
    if word.endswith("e") and count > 1 and not word.endswith(("le", "ee")):
        count -= 1
    return max(count, 1)


_CUE_STEMS: dict[str, frozenset[str]] = {
    category: frozenset(_stem(w) for w in words) for category, words in _CATEGORY_CUES.items()
}


def normalise(text: str) -> str:
    """Unicode-normalise, straighten quotes and dashes, undo line-break hyphenation, drop page
    furniture, and trim trailing spaces. Line structure is kept (segmentation needs it)."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT_MAP)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)
    lines = [] if not text else text.split("\n")
    kept = [
        re.sub(r" {2,}", " ", line).rstrip() for line in lines if not _PAGE_FURNITURE.match(line)
    ]
    return "\n".join(kept).strip()


def split_sentences(text: str) -> list[str]:
    """Split on sentence punctuation, but not after abbreviations, initials or list markers."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1)
        before = text[start:end].rstrip(".!?")
        last = before.rsplit(None, 1)[-1].lower() if before.strip() else ""
        last = last.lstrip("(\"'")
        if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()) or last.isdigit():
            continue
        sentence = text[start : match.end(2)].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _title_case(heading: str) -> str:
    return " ".join(w.capitalize() if w.isupper() else w for w in heading.split())


def segment(text: str) -> tuple[str, str, list[dict[str, str]]]:
    """Split normalised contract text into (title, preamble, raw clauses).

    A section heading is a numbered all-caps line (``11. LIMITATION OF LIABILITY``); a clause
    starts with a dotted number (``11.3``) and runs until the next clause or section. A section
    with body text but no numbered sub-clauses becomes one clause. Text after ``IN WITNESS
    WHEREOF`` (signature blocks) is ignored.
    """
    title = ""
    preamble: list[str] = []
    raw: list[dict[str, str]] = []
    section, section_title = "", ""
    current: dict[str, Any] | None = None

    def flush() -> None:
        nonlocal current
        if current is not None:
            body = " ".join(current.pop("lines")).strip()
            if body:
                current["body"] = body
                raw.append(current)
        current = None

    for line in text.split("\n"):
        stripped = line.strip()
        if _END_MARKERS.match(stripped):
            break
        if not stripped:
            continue
        m = _SECTION.match(stripped)
        if m:
            flush()
            section, section_title = m.group(1), _title_case(m.group(2).strip())
            current = {"id": section, "section": section, "section_title": section_title}
            current["lines"] = []
            continue
        m = _CLAUSE.match(stripped)
        if m and section and m.group(1).split(".")[0] == section:
            flush()
            current = {"id": m.group(1), "section": section, "section_title": section_title}
            current["lines"] = [m.group(2)]
            continue
        if current is None:
            if not title and stripped.isupper():
                title = _title_case(stripped)
            else:
                preamble.append(stripped)
            continue
        current["lines"].append(stripped)
    flush()
    return title, " ".join(preamble), raw


def _to_days(quantity: int, unit: str) -> int:
    unit = unit.lower()
    if unit.startswith("business"):
        return math.ceil(quantity * 7 / 5)
    if unit.startswith("month"):
        return quantity * 30
    if unit.startswith("year"):
        return quantity * 365
    return quantity


def _durations(text: str) -> list[int]:
    days: list[int] = []
    for m in _DURATION.finditer(text):
        if m.group(2):
            quantity = int(m.group(2))
        elif m.group(3):
            quantity = int(m.group(3))
        else:  # pragma: no cover - the pattern always captures a number
            continue
        days.append(_to_days(quantity, m.group(4)))
    # "one (1) year" style without digits in brackets: "twelve months"
    for word, value in _NUMBER_WORDS.items():
        for m in re.finditer(rf"\b{word}\s+(business\s+days?|days?|months?|years?)\b", text, re.I):
            days.append(_to_days(value, m.group(1)))
    return sorted(set(days))


def _features(clause_text: str) -> dict[str, Any]:
    """Sentences, tokens, stems, cue hits per category, numbers, references, readability."""
    sentences = split_sentences(clause_text)
    lowered = clause_text.lower()
    words = _WORD.findall(lowered)
    syllables = sum(_syllables(w) for w in words)
    n_words = max(len(words), 1)
    n_sentences = max(len(sentences), 1)
    readability = 206.835 - 1.015 * (n_words / n_sentences) - 84.6 * (syllables / n_words)

    stems: dict[str, int] = {}
    for word in words:
        if word in _STOPWORDS:
            continue
        stem = _stem(word.strip("'-"))
        if len(stem) > 2:
            stems[stem] = stems.get(stem, 0) + 1
    bigrams: dict[str, int] = {}
    content = [_stem(w) for w in words if w not in _STOPWORDS]
    for a, b in itertools.pairwise(content):
        key = f"{a} {b}"
        bigrams[key] = bigrams.get(key, 0) + 1

    keywords: dict[str, int] = {}
    for category, cues in _CUE_STEMS.items():
        hits = sum(count for stem, count in stems.items() if stem in cues)
        if hits:
            keywords[category] = hits

    return {
        "word_count": len(words),
        "sentence_count": len(sentences),
        "readability": round(readability, 2),
        "keywords": keywords,
        "stems": stems,
        "bigrams": bigrams,
        "durations_days": _durations(clause_text),
        "percentages": sorted({float(p) for p in _PERCENT.findall(clause_text)}),
        "money": sorted({float(v.replace(",", "")) for v in _MONEY.findall(clause_text)}),
        "references": sorted(set(_REFERENCE.findall(clause_text)), key=_clause_sort_key),
    }


def _clause_sort_key(ref: str) -> tuple[int, ...]:
    return tuple(int(part) for part in ref.split("."))


def _tfidf(docs: list[dict[str, int]]) -> list[dict[str, float]]:
    """L2-normalised TF-IDF vectors over unigram and bigram counts."""
    df: dict[str, int] = {}
    for doc in docs:
        for term in doc:
            df[term] = df.get(term, 0) + 1
    n = len(docs)
    vectors: list[dict[str, float]] = []
    for doc in docs:
        vec = {t: (1.0 + math.log(c)) * math.log((1 + n) / (1 + df[t])) for t, c in doc.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vectors.append({t: v / norm for t, v in vec.items()})
    return vectors


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(t, 0.0) for t, v in a.items())


def _shingles(text: str, k: int = 5) -> set[str]:
    squeezed = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return {squeezed[i : i + k] for i in range(max(len(squeezed) - k + 1, 1))}


def _resolve_text(state: dict[str, Any]) -> str:
    text = state.get("text")
    if isinstance(text, str) and text.strip():
        return text
    path = state.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError("contract review input needs 'text' (the contract) or 'path' (a file)")
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists():
        # Relative paths resolve against the working directory first, then the project root
        # (the directory holding the ``examples`` package), so the shipped config works anywhere.
        candidate = Path(__file__).resolve().parents[2] / path
    return candidate.read_text(encoding="utf-8")


@offload
def split_clauses(state: ContractState) -> dict[str, Any]:
    """Node ``split_clauses``: contract text (or file) -> ``title``, ``parties``, ``clauses``.

    CPU-bound pure Python; decorated with ``@offload`` so SubinterpreterExecutor's hybrid mode
    runs it inside an own-GIL subinterpreter. Input and output are JSON-like.
    """
    text = normalise(_resolve_text(dict(state)))
    title, preamble, raw = segment(text)
    parties = sorted(set(_PARTY.findall(preamble)), key=preamble.index)

    feats: list[dict[str, Any]] = []
    for item in raw:
        body = item["body"]
        feature = _features(body)
        heading_match = _RUN_IN_HEADING.match(body)
        heading = heading_match.group(1) if heading_match else ""
        if heading and len(heading.split()) > 8:
            heading = ""
        feature["heading"] = heading
        feats.append(feature)

    # Corpus-level: TF-IDF top terms and the most similar other clause (TF-IDF cosine blended
    # with character-shingle Jaccard, which catches boilerplate that differs in a few words).
    vectors = _tfidf([{**f["stems"], **f["bigrams"]} for f in feats])
    shingles = [_shingles(item["body"]) for item in raw]
    best: list[tuple[float, int]] = [(0.0, -1)] * len(raw)
    for i in range(len(raw)):
        for j in range(i + 1, len(raw)):
            union = len(shingles[i] | shingles[j]) or 1
            sim = (
                0.6 * _cosine(vectors[i], vectors[j]) + 0.4 * len(shingles[i] & shingles[j]) / union
            )
            if sim > best[i][0]:
                best[i] = (sim, j)
            if sim > best[j][0]:
                best[j] = (sim, i)

    clauses: list[Clause] = []
    for index, (item, feature, vector) in enumerate(zip(raw, feats, vectors, strict=True)):
        top = sorted((t for t in vector if " " not in t), key=lambda t: (-round(vector[t], 9), t))[
            :5
        ]
        sim, other = best[index]
        clauses.append(
            Clause(
                id=item["id"],
                index=index,
                section=item["section"],
                section_title=item["section_title"],
                heading=feature["heading"],
                text=item["body"],
                word_count=feature["word_count"],
                sentence_count=feature["sentence_count"],
                readability=feature["readability"],
                keywords=feature["keywords"],
                top_terms=top,
                durations_days=feature["durations_days"],
                percentages=feature["percentages"],
                money=feature["money"],
                references=feature["references"],
                related=raw[other]["id"] if other >= 0 and sim >= 0.3 else "",
            )
        )
    return {"title": title, "parties": parties, "clauses": clauses}


# --------------------------------------------------------------------------------------------
# Risk rules (from the Customer's point of view)
# --------------------------------------------------------------------------------------------

RuleCheck = Callable[[Clause, str], "tuple[float, str] | None"]
RULES: list[tuple[str, str, RuleCheck]] = []


def rule(rule_id: str, category: str) -> Callable[[RuleCheck], RuleCheck]:
    """Register a rule. A rule gets the clause and its lowercased text and returns
    ``(weight 0-10, reason)`` when it fires, else ``None``."""

    def register(check: RuleCheck) -> RuleCheck:
        RULES.append((rule_id, category, check))
        return check

    return register


def _search(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(pattern, text)


@rule("unlimited_liability", "liability")
def _unlimited_liability(clause: Clause, text: str) -> tuple[float, str] | None:
    # ".{0,160}?" rather than "[^.]": the sentence may cite "Section 10.1" before the verb.
    m = _search(
        r"(\w+)'s liability\b.{0,160}?shall (?:be unlimited|not be (?:limited|capped))", text
    )
    if m:
        return 9.5, f"{m.group(1).capitalize()}'s liability is unlimited"
    if _search(r"unlimited liability|liability\b.{0,80}?shall not be (?:limited|capped)", text):
        return 9.5, "Liability is unlimited"
    return None


@rule("low_liability_cap", "liability")
def _low_liability_cap(clause: Clause, text: str) -> tuple[float, str] | None:
    m = _search(r"shall not exceed[^.]{0,80}fees[^.]{0,60}?(\w+) \((\d+)\) months", text)
    if m and int(m.group(2)) < 12:
        return 7.0, f"Provider's liability is capped at {m.group(2)} months of fees"
    return None


@rule("one_sided_damages_exclusion", "liability")
def _one_sided_exclusion(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"in no event shall provider be liable[^.]{0,80}(?:indirect|consequential)", text):
        return 5.0, "Only the Provider is shielded from indirect and consequential damages"
    return None


@rule("broad_indemnity", "indemnity")
def _broad_indemnity(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"customer shall (?:defend, )?indemnify", text) and "any and all" in text:
        return 8.0, "Customer gives a broad, one-sided indemnity for any and all claims"
    if _search(r"each party shall (?:defend, )?indemnify", text):
        return 1.0, "Mutual indemnity"
    return None


@rule("narrow_provider_indemnity", "indemnity")
def _narrow_provider_indemnity(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"provider shall (?:defend|indemnify)", text) and _search(
        r"united states patent|as delivered by provider", text
    ):
        return 4.5, "Provider's IP indemnity is narrow (limited scope of rights and territory)"
    return None


@rule("auto_renewal", "renewal")
def _auto_renewal(clause: Clause, text: str) -> tuple[float, str] | None:
    if not _search(r"automatic(?:ally)? renew", text):
        return None
    notice = [d for d in clause["durations_days"] if d < 365]
    if notice and max(notice) >= 60:
        return 6.0, f"Auto-renews unless notice is given {max(notice)} days before term end"
    return 4.0, "Auto-renews"


@rule("unilateral_price_increase", "payment")
def _price_increase(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"(?:may|shall) increase[^.]{0,60}(?:sole discretion|upon notice)", text):
        return 5.5, "Provider may raise prices at its discretion"
    return None


@rule("short_payment_term", "payment")
def _short_payment_term(clause: Clause, text: str) -> tuple[float, str] | None:
    m = _search(r"pay each invoice within[^.]{0,20}\((\d+)\) days", text)
    if m and int(m.group(1)) < 30:
        return 4.0, f"Payment due within {m.group(1)} days of invoice (market: 30+)"
    return None


@rule("high_late_interest", "payment")
def _late_interest(clause: Clause, text: str) -> tuple[float, str] | None:
    if "interest" in text and "per month" in text:
        rates = [p for p in clause["percentages"] if p > 1.0]
        if rates:
            return 5.0, f"Late interest of {max(rates):g}% per month"
    return None


@rule("termination_for_convenience", "termination")
def _termination_for_convenience(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"provider may terminate[^.]{0,80}for convenience", text):
        return 6.5, "Provider may terminate for convenience; Customer may not"
    if _search(r"customer may not terminate[^.]{0,40}for convenience", text):
        fee = " and owes an early termination fee" if "termination fee" in text else ""
        return 7.0, f"Customer cannot terminate for convenience{fee}"
    return None


@rule("short_confidentiality", "confidentiality")
def _confidentiality_duration(clause: Clause, text: str) -> tuple[float, str] | None:
    if "surviv" not in text or "confidential" not in clause["section_title"].lower():
        return None
    years = [d / 365 for d in clause["durations_days"] if d >= 365]
    if years and min(years) < 3:
        return 5.0, f"Confidentiality survives only {min(years):g} year(s) after termination"
    return None


@rule("slow_breach_notice", "data_protection")
def _breach_notice(clause: Clause, text: str) -> tuple[float, str] | None:
    if "breach" not in text or "notify" not in text:
        return None
    if "without undue delay" in text:
        return 1.0, "Breach notice without undue delay"
    if clause["durations_days"] and min(clause["durations_days"]) > 3:
        return 6.0, f"Breach notice takes up to {min(clause['durations_days'])} days (GDPR: 72h)"
    return None


@rule("data_commercialisation", "data_protection")
def _data_commercialisation(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(
        r"(?:use|commerciali[sz]e)[^.]{0,60}derived from customer data[^.]{0,40}any purpose", text
    ):
        return 5.5, "Provider may commercialise data derived from Customer Data for any purpose"
    return None


@rule("provider_owns_deliverables", "ip")
def _ip_ownership(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(
        r"deliverables[^.]{0,120}(?:vest in|owned (?:exclusively )?by|belong to) provider", text
    ):
        return 7.5, "Provider owns Deliverables made specifically for Customer"
    return None


@rule("warranty_disclaimer", "warranty")
def _warranty_disclaimer(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r'"as is"|\bas is\b', text) and "disclaim" in text:
        return 4.0, "Platform and Deliverables provided as is; implied warranties disclaimed"
    return None


@rule("exclusive_remedy", "service")
def _exclusive_remedy(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"sole (?:and exclusive )?remedy", text):
        return 4.0, "Remedies limited to a sole and exclusive remedy"
    return None


@rule("suspension_without_notice", "service")
def _suspension(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"may suspend[^.]{0,60}(?:without notice|immediately)", text):
        return 6.0, "Provider may suspend the Services without notice"
    return None


@rule("unilateral_changes", "service")
def _unilateral_changes(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(
        r"provider may (?:modify|amend|change)[^.]{0,80}(?:at any time|sole discretion)", text
    ):
        if "terms" in text:
            return 8.0, "Provider may amend the contract terms unilaterally"
        return 3.5, "Provider may change the Platform at its discretion"
    return None


@rule("foreign_forum", "governing_law")
def _foreign_forum(clause: Clause, text: str) -> tuple[float, str] | None:
    m = _search(r"governed by[^.]{0,60}laws of ([a-z ]+)", text)
    if m:
        return 2.0, f"Governed by the laws of {m.group(1).strip().title()}"
    if "exclusive jurisdiction" in text:
        return 4.0, "Exclusive jurisdiction of the counterparty's home courts"
    return None


@rule("jury_or_class_waiver", "governing_law")
def _waivers(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"class action", text) and "customer" in text:
        return 5.0, "Customer waives class actions"
    if _search(r"waives? any right to (?:a )?trial by jury", text):
        return 3.0, "Jury trial waived"
    return None


@rule("restrictive_covenant", "restrictive_covenant")
def _restrictive(clause: Clause, text: str) -> tuple[float, str] | None:
    if "exclusive provider" in text or "shall not engage any competitor" in text:
        return 6.0, "Customer is locked into Provider exclusively"
    if _search(r"shall not solicit", text):
        long = [d for d in clause["durations_days"] if d > 365]
        if long:
            return 4.0, f"Non-solicitation lasts {max(long) // 30} months after the term"
        return 2.0, "Non-solicitation"
    return None


@rule("one_sided_assignment", "assignment")
def _assignment(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"provider may assign[^.]{0,80}without customer's consent", text):
        return 3.5, "Provider may assign without consent; Customer may not"
    return None


@rule("unilateral_audit", "audit")
def _audit(clause: Clause, text: str) -> tuple[float, str] | None:
    if _search(r"provider may[^.]{0,40}audit customer", text):
        return 3.0, "Provider may audit Customer at short notice"
    return None


def _level(score: float) -> str:
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return "none"


def _excerpt(clause: Clause) -> str:
    plain = clause["text"]
    return plain if len(plain) <= EXCERPT_CHARS else plain[: EXCERPT_CHARS - 3].rstrip() + "..."


def score_clause(clause: Clause) -> Finding:
    """Apply every rule to one clause: the score is the highest rule weight plus 0.5 for each
    further rule that fired, capped at 10."""
    text = " ".join(clause["text"].lower().split())
    hits: list[tuple[float, str, str, str]] = []
    for rule_id, category, check in RULES:
        verdict = check(clause, text)
        if verdict is not None:
            hits.append((verdict[0], rule_id, category, verdict[1]))
    hits.sort(key=lambda h: (-h[0], h[1]))
    score = 0.0
    if hits:
        score = min(10.0, hits[0][0] + 0.5 * (len(hits) - 1))
    categories: list[str] = []
    for _, _, category, _ in hits:
        if category not in categories:
            categories.append(category)
    return Finding(
        clause_id=clause["id"],
        heading=clause["heading"] or clause["section_title"],
        score=round(score, 2),
        level=_level(score),
        categories=categories,
        rules=[h[1] for h in hits],
        reasons=[h[3] for h in hits],
        excerpt=_excerpt(clause),
    )


async def _score_one(clause: Clause) -> Finding:
    # A real reviewer would consult an async rules or precedent service here; yielding to the
    # loop keeps the fan-out honest (all clause coroutines interleave on the run's loop).
    await asyncio.sleep(0)
    return score_clause(clause)


async def score_clauses(state: ContractState) -> dict[str, Any]:
    """Node ``score_clauses`` (async): one coroutine per clause, gathered; order preserved."""
    findings = await asyncio.gather(*(_score_one(c) for c in state.get("clauses", [])))
    return {"findings": list(findings)}


def score_clauses_sync(state: ContractState) -> dict[str, Any]:
    """The same as :func:`score_clauses` for the sync API (``graph.invoke``)."""
    return {"findings": [score_clause(c) for c in state.get("clauses", [])]}


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------

# Protections a customer-side reviewer expects to find; each is (name, pattern over headings
# and text of the whole contract).
EXPECTED_PROTECTIONS: tuple[tuple[str, str], ...] = (
    ("limitation of liability for both parties", r"(?:either|each) party's (?:total )?liability"),
    ("insurance", r"\binsurance\b"),
    ("business continuity / disaster recovery", r"disaster recovery|business continuity"),
    ("customer termination for convenience", r"customer may terminate[^.]{0,60}convenience"),
    ("data breach notice within 72 hours", r"(?:72|seventy-two) hours"),
    ("confidentiality", r"confidential information"),
    ("governing law", r"governed by"),
)


def aggregate_report(state: ContractState) -> dict[str, Any]:
    """Node ``aggregate_report``: overall level and score, counts, top risks, gaps."""
    clauses = state.get("clauses", [])
    findings = state.get("findings", [])

    counts_by_level = dict.fromkeys(LEVELS, 0)
    category_counts: dict[str, int] = {}
    for finding in findings:
        counts_by_level[finding["level"]] += 1
        for category in finding["categories"]:
            category_counts[category] = category_counts.get(category, 0) + 1
    counts_by_category = {
        k: category_counts[k]
        for k in sorted(category_counts, key=lambda k: (-category_counts[k], k))
    }

    order = {f["clause_id"]: i for i, f in enumerate(findings)}
    ranked = sorted(
        (f for f in findings if f["score"] > 0), key=lambda f: (-f["score"], order[f["clause_id"]])
    )
    top = ranked[:TOP_N]
    risk_score = round(10.0 * sum(f["score"] for f in top) / TOP_N, 1) if top else 0.0

    corpus = " ".join(" ".join(c["text"].lower().split()) for c in clauses)
    missing = [name for name, pattern in EXPECTED_PROTECTIONS if not re.search(pattern, corpus)]

    report = Report(
        title=state.get("title", ""),
        parties=list(state.get("parties", [])),
        clause_count=len(clauses),
        word_count=sum(c["word_count"] for c in clauses),
        overall_risk=_level(risk_score / 10.0),
        risk_score=risk_score,
        counts_by_level=counts_by_level,
        counts_by_category=counts_by_category,
        top_risks=top,
        missing_protections=missing,
    )
    return {"report": report}
