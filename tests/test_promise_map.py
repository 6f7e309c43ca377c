"""Every promise a lab docstring makes is mapped to the test that checks it (issue 23).

A student reads the reference docstrings (they ship in the stubs) as the specification. The
sentences of them that state a number or bound, a boundary, a dtype, a shape or an order are
*promises*: a mistake that reads such a sentence the other way (`>` for `>=`, float32 for
float64, a statement on the wrong side of `optimizer.step()`) passes unless some graded input
sits where the two readings differ. So each promise is mapped, in the lab's test files, to the
test that draws such an input, with a comment of the form

    # Docstring (FUNCTION): "a distinctive quoted fragment of the sentence"

right above or inside that test (or the helper it calls), optionally followed by a line that
says which input reaches it. One marker may quote several fragments and name several
functions; a plain `Docstring: "..."` means the reference file the test file is named after,
and must then quote a fragment only one docstring there holds. Whitespace, case, backticks
and asterisks do not matter, and "..." stands for any text in between. A promise no test
checks, or one deliberately not graded (display, motivation, a statement about the code
students are given), is listed in ALLOWED below with its reason; the category UNCHECKED marks
real promises no graded input reaches yet. An entry may quote the part of a mapped sentence
that its test leaves open ("then create the optimizer"): the report shows it as partly
open. Hints ("Hint: use torch.xlogy") are advice, never promises.

The tests here fail, naming the function, the sentence and the file, when a promise has
neither a map comment nor an allow-list entry, and when a comment or an entry quotes a
fragment that no docstring of its function holds any more (a stale map). Run
`python -m tests.test_promise_map [-v]` for the counts per file and the open findings (with
`-v`, every promise and what covers it).
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.variants import solution_regions, student_functions

REPO = Path(__file__).resolve().parents[1]
LABS = ("lab1", "lab2")

# ----------------------------------------------------------------------------- sentences


@dataclass
class Docstring:
    """One docstring of a reference file, split into sentences."""

    lab: str
    file: str  # e.g. "reference/lab2/sae.py"
    name: str  # qualified name ("SAE.encode"), or "module" for the module docstring
    line: int
    student: bool  # a function students write (or a class whose methods they write)
    sentences: list[str] = field(default_factory=list)

    @property
    def module(self) -> str:
        return Path(self.file).stem


# The start of a list item: "values: float (runs, k), ...", "W_enc  (d_sae, d_in) ...", "- ...".
_ITEM = re.compile(r"[\w.\[\]]+:\s|\w+\s{2,}|- ")


def _segments(text: str) -> list[str]:
    """A docstring's text cut where the layout says a new statement starts: blank lines,
    numbered steps ("1. ..."), and the items of an indented list; lines inside a segment are
    joined."""
    lines = text.expandtabs().splitlines()
    segments: list[list[str]] = []
    current: list[str] = []
    first_indent = previous_indent = 0
    for raw in lines:
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        new = (
            not stripped
            or re.match(r"\d+\.\s", stripped) is not None
            or (current and indent > previous_indent and current[-1].endswith(":"))
            or (current and 0 < indent <= first_indent and _ITEM.match(stripped) is not None)
            or (current and indent < first_indent)
        )
        if new and current:
            segments.append(current)
            current = []
        if stripped:
            if not current:
                first_indent = indent
            current.append(stripped)
            previous_indent = indent
    if current:
        segments.append(current)
    return [" ".join(segment) for segment in segments]


# A full stop ends a sentence unless it ends an abbreviation or sits inside a number or a name.
_ABBREVIATIONS = ("e.g.", "i.e.", "et al.", "etc.", "vs.", "cf.", "S&B.")
_SENTENCE_END = re.compile(r"(?<=[^\s.][.!?])\s+(?=[A-Z0-9`(\"'*]|[a-z_][\w, ]*:\s)")


def split_sentences(text: str) -> list[str]:
    sentences = []
    for segment in _segments(text):
        pieces = _SENTENCE_END.split(segment)
        merged: list[str] = []
        for piece in pieces:
            # an abbreviation does not end a sentence; a hint runs to the end of its paragraph
            if merged and (merged[-1].endswith(_ABBREVIATIONS) or merged[-1].startswith("Hint:")
                           or re.fullmatch(r"\d+\.", merged[-1])):
                merged[-1] += " " + piece
            else:
                merged.append(piece)
        sentences.extend(piece.strip() for piece in merged if piece.strip())
    return sentences


def docstrings_of(path: Path) -> list[Docstring]:
    """Every docstring of one reference file: the module's, each class's and function's."""
    text = path.read_text()
    regions = solution_regions(text)  # a function or class holding one is the students'
    tree = ast.parse(text, str(path))
    lab, file = path.parent.name, path.relative_to(REPO).as_posix()
    found = []
    if (doc := ast.get_docstring(tree)) is not None:
        found.append(Docstring(lab, file, "module", 1, False, split_sentences(doc)))

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                doc = ast.get_docstring(child)
                if doc is not None:
                    student = any(child.lineno <= start <= child.end_lineno
                                  for start, _ in regions)
                    found.append(Docstring(lab, file, name, child.lineno, student,
                                           split_sentences(doc)))
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".")

    visit(tree, "")
    return found


def all_docstrings(lab: str) -> list[Docstring]:
    return [doc for path in sorted((REPO / "reference" / lab).glob("*.py"))
            for doc in docstrings_of(path)]


# ----------------------------------------------------------------------------- promises

# Digits that are no promise: citations ("S&B section 2.3", "et al. 2022", "Figures 2.2-2.5")
# and the digits of names (fc1, float64, hook names) never follow a word boundary.
_CITATION = re.compile(
    r"(S&B\s+(sections?|equations?|exercise|chapter)\s+[\d.]+(\s*(and|-|,)\s*[\d.]+)*"
    r"|et al\.,?\s+\d{4}|\b(19|20)\d\d\b|Figures?\s+[\d.]+(-[\d.]+)?)"
)
PROMISE_RULES: dict[str, re.Pattern[str]] = {
    "number": re.compile(
        r"\b\d|\b(at least|at most|no more than|fewer than|more than|less than|greater than"
        r"|within|accurate to)\b|>=|<=|(?<![-=<])>(?!=)|<(?![-=])",
        re.IGNORECASE,
    ),
    "boundary": re.compile(
        r"\b(cross(es|ing)|ties|tied|tie|equal(ly|s)?|exactly|inclusive|exclusive|first"
        r"|last|empty|inf|nan|finite|overflow)\b(?!-)",
        re.IGNORECASE,
    ),
    "dtype": re.compile(
        r"\b(float64|float32|float16|int64|int32|ints?|bool|dtype|scalar|0-dim|floats?)\b",
        re.IGNORECASE,
    ),
    "shape": re.compile(r"(?<![\w\]])\((?:[\w*+\-/ .]+,)+[\w*+\-/ .]*\)|\bshape\b"),
    "order": re.compile(r"\b(before|after|then|afterwards|in order|order)\b", re.IGNORECASE),
}


def promise_kinds(sentence: str) -> list[str]:
    """The kinds of promise a sentence makes; [] for one that makes none. Hints (advice on
    how to write the function: "Hint: use torch.xlogy") are never promises."""
    if sentence.startswith("Hint:") or sentence.startswith("(Hint"):
        return []
    plain = _CITATION.sub(" ", sentence)
    return [kind for kind, rule in PROMISE_RULES.items() if rule.search(plain)]


@dataclass(frozen=True)
class Promise:
    lab: str
    file: str
    name: str
    sentence: str
    kinds: tuple[str, ...]
    line: int  # where the docstring's function or class starts


def promises(lab: str) -> list[Promise]:
    found = []
    for doc in all_docstrings(lab):
        if not doc.student:
            continue
        for sentence in doc.sentences:
            kinds = promise_kinds(sentence)
            if kinds:
                found.append(Promise(lab, doc.file, doc.name, sentence, tuple(kinds), doc.line))
    return found


# ----------------------------------------------------------------------------- the map

# "Docstring (NAMES):", "Docstring:", "Docstring (train), step 2:"; not inside quotes.
_MARKER = re.compile(r"(?<![\"'])Docstring(?:\s*\(([^)]*)\))?"
                     r"\s*(?:,\s*step \d+(?: as a whole)?)?\s*:")
_QUOTE = re.compile(r'"([^"]+)"')
# What may stand between two fragments quoted after one marker: "and", a comma, a name in
# parentheses ("(module)"), "class docstring:", "step 3:".
_GAP = re.compile(r"[\s,;:]*(?:\b(?:and|or|also)\b)?[\s,;:]*"
                  r"|[\s,;:.]*(?:\([\w., ]+\)|class docstring:|step \d+:)[\s,;:]*")


def normalise(text: str) -> str:
    """Case, backticks, emphasis and whitespace (line breaks, a space a reflowed comment put
    before a parenthesis) do not matter when a fragment is matched."""
    return "".join(text.replace("`", "").replace("*", "").lower().split())


@dataclass(frozen=True)
class MapEntry:
    """One fragment quoted after a `Docstring (NAME):` marker in a test file."""

    file: str  # the test file, e.g. "autograder/lab2/test_sae.py"
    line: int
    names: tuple[str, ...]  # as written in the marker; () for a plain "Docstring:"
    fragment: str

    @property
    def lab(self) -> str:
        return Path(self.file).parent.name

    @property
    def module(self) -> str:
        return Path(self.file).stem.removeprefix("test_")


def _texts(path: Path) -> list[tuple[list[tuple[int, int]], str]]:
    """The prose of a test file: each run of comment lines joined into one text, and each
    docstring; with each text, where its lines start ((offset in the text, line number))."""
    source = path.read_text()
    texts: list[tuple[list[tuple[int, int]], str]] = []
    block: list[str] = []
    starts: list[tuple[int, int]] = []
    last = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        row = token.start[0]
        if block and row != last + 1:
            texts.append((starts, " ".join(block)))
            block, starts = [], []
        starts.append((sum(len(b) + 1 for b in block), row))
        block.append(token.string.lstrip("#").strip())
        last = row
    if block:
        texts.append((starts, " ".join(block)))
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                texts.append(([(0, body[0].lineno)], " ".join(body[0].value.value.split())))
    return texts


def map_entries(lab: str) -> list[MapEntry]:
    """Every fragment quoted after a marker in the lab's test files. One marker may quote
    several fragments, separated by commas, "and", or a name in parentheses that adds a
    function: `Docstring (f): "a", "b"; (g) "c"` looks for "a", "b" and "c" in f and g."""
    entries = []
    for path in sorted((REPO / "autograder" / lab).glob("test_*.py")):
        file = path.relative_to(REPO).as_posix()
        for starts, text in _texts(path):
            for marker in _MARKER.finditer(text):
                line = max(row for offset, row in starts if offset <= marker.start())
                names = tuple(n.strip() for n in re.split(r",|;|\band\b|/", marker.group(1) or "")
                              if n.strip())
                fragments: list[str] = []
                position = marker.end()
                while (quote := _QUOTE.search(text, position)) is not None:
                    gap = text[position:quote.start()]
                    if fragments and not _GAP.fullmatch(gap) or not fragments and gap.strip():
                        break  # prose ends the list (a marker not followed by a quote maps nothing)
                    for group in re.findall(r"\(([\w., ]+)\)", gap):
                        names += tuple(n.strip() for n in group.split(",")
                                       if n.strip() and n.strip() not in names)
                    fragments.append(quote.group(1))
                    position = quote.end()
                entries += [MapEntry(file, line, names, fragment) for fragment in fragments]
    return entries


def _resolve(entry: MapEntry, docs: list[Docstring]) -> tuple[list[Docstring], bool]:
    """The docstrings a map entry may quote: those its marker names (a name is a qualified
    name, its last part, "module", or "file.name"), looked for first in the reference file the
    test file is named after; a marker that names none of them means that file's docstrings.
    The flag says whether the marker named them."""
    own = [doc for doc in docs if doc.module == entry.module]
    found: list[Docstring] = []
    for name in entry.names:
        for pool in (own, docs):
            hits = [doc for doc in pool
                    if name in (doc.name, f"{doc.module}.{doc.name}")
                    or doc.name.endswith("." + name)]
            if hits:
                found += [doc for doc in hits if doc not in found]
                break
    return (found, True) if found else (own, False)


def _locate(fragment: str, doc: Docstring) -> list[int] | None:
    """The indices of the sentences of `doc` that `fragment` quotes ("..." may stand for any
    text in between), or None when the docstring does not hold it."""
    texts = [normalise(sentence) for sentence in doc.sentences]
    starts, position = [], 0
    for text in texts:
        starts.append(position)
        position += len(text)
    whole = "".join(texts)
    hit: set[int] = set()
    position = 0
    for piece in re.split(r"\.\.\.|\u2026", fragment):
        piece = normalise(piece)
        if not piece:
            continue
        at = whole.find(piece, position)
        if at < 0:
            return None
        end = at + len(piece)
        hit |= {i for i, start in enumerate(starts) if start < end and start + len(texts[i]) > at}
        position = end
    return sorted(hit)


# ----------------------------------------------------------------------------- the allow list


@dataclass(frozen=True)
class Allowed:
    """A promise sentence no map comment covers, on purpose: `fragment` quotes it (whitespace,
    case and backticks do not matter) in the docstring of `name` in `lab`."""

    lab: str
    name: str  # qualified name, or "file.name" where the name is not unique in the lab
    fragment: str
    category: str  # one of CATEGORIES
    reason: str


CATEGORIES = {
    "given": "a statement about code students are given, not about what they write",
    "not graded": "deliberately not graded (display, speed, motivation)",
    "UNCHECKED": "a real promise that no graded input reaches yet: a finding",
}

# An entry may also quote the part of a sentence that a mapped test leaves unreached (the
# sentence then shows as mapped, and the entry says what is still open).
ALLOWED: list[Allowed] = [
    # ---- lab 1
    Allowed("lab1", "train", "The setup (seeding, networks, optimiser, buffer) is done for you",
            "given", "the set-up lines stand above the part students write"),
    # ---- lab 2: the code students are given
    Allowed("lab2", "train_induction_model", "Import from transformer.py inside this function "
            "(as the first line does)", "given", "the import line stands above the part "
            "students write"),
    Allowed("lab2", "LayerNorm", "Parameters: w (d_model,) (starts at ones)", "given",
            "the __init__ is given; the tests load random values into every parameter"),
    Allowed("lab2", "Embed", "Parameter: W_E (d_vocab, d_model)", "given",
            "the __init__ is given"),
    Allowed("lab2", "PosEmbed", "Parameter: W_pos (n_ctx, d_model)", "given",
            "the __init__ is given"),
    Allowed("lab2", "Attention", "Parameters: W_Q, W_K, W_V (n_heads, d_model, d_head)",
            "given", "the __init__ is given"),
    Allowed("lab2", "MLP", "Parameters: W_in (d_model, d_mlp)", "given",
            "the __init__ is given"),
    Allowed("lab2", "Unembed", "Parameters: W_U (d_model, d_vocab)", "given",
            "the __init__ is given"),
    Allowed("lab2", "Transformer", "Submodules: embed, pos_embed, blocks (an nn.ModuleList)",
            "given", "the __init__ is given"),
    # ---- lab 2: not graded
    Allowed("lab2", "repeated_blocks", "The length changes from batch to batch, so that the "
            "model cannot learn", "not graded", "why the length is drawn; the draws themselves "
            "are mapped (test_repeated_blocks)"),
    Allowed("lab2", "loss_by_position", "On repeated tokens an induction head makes out[t] "
            "small", "not graded", "what a trained model shows, not a property of the "
            "function; the ablation test measures the second-copy loss itself"),
    Allowed("lab2", "loss_by_position", "Compute it here (log_softmax, then gather) rather "
            "than with transformer.py", "not graded", "advice that keeps the part independent "
            "of transformer.py; the same values pass either way"),
    Allowed("lab2", "neuron_frequencies", "The shares of different frequencies add up to at "
            "most 1", "not graded", "a fact of the mathematics that explains why the answer "
            "is unique, not a requirement"),
    Allowed("lab2", "sae.train_sae", "Show a tqdm progress bar", "not graded",
            "display; the grader trains with progress off"),
    Allowed("lab2", "superposition.train_toy_model", "Show a tqdm progress bar", "not graded",
            "display; the grader trains with progress off"),
    Allowed("lab2", "transformer.train", "Show a tqdm progress bar", "not graded",
            "display; the grader trains with progress off"),
    Allowed("lab2", "sae.train_sae", "then create the optimizer", "not graded",
            "unobservable: nn.Module.to moves the parameters in place, so an optimizer made "
            "before the move holds the same parameters"),
    # ---- lab 2: left open on purpose
    Allowed("lab2", "neuron_frequencies", "a share exactly at the threshold is left open",
            "not graded", "the docstring leaves the tie open on purpose: a share is a ratio of "
            "sums of squared coefficients in a basis of cos and sin of 2 pi k x / p, so its "
            "last bits depend on the order of operations, and a threshold set to the "
            "reference's share would grade rounding, not > against >="),
]


# ----------------------------------------------------------------------------- the tests


@dataclass
class Coverage:
    promise: Promise
    mapped: list[MapEntry] = field(default_factory=list)
    allowed: list[Allowed] = field(default_factory=list)


def _allowed_docs(entry: Allowed, docs: list[Docstring]) -> list[Docstring]:
    return [doc for doc in docs if entry.name in (doc.name, f"{doc.module}.{doc.name}")]


def coverage(lab: str) -> tuple[list[Coverage], list[str]]:
    """Every promise of `lab` with what covers it, and the stale map and allow-list entries."""
    docs = all_docstrings(lab)
    table = {(p.file, p.name, p.sentence): Coverage(p) for p in promises(lab)}
    stale = []
    for entry in map_entries(lab):
        targets, named = _resolve(entry, docs)
        located = [(doc, _locate(entry.fragment, doc)) for doc in targets]
        located = [(doc, hit) for doc, hit in located if hit is not None]
        marker = f"Docstring ({', '.join(entry.names)})" if entry.names else "Docstring"
        if not located:
            where = (", ".join(sorted({doc.name for doc in targets})) if named
                     else f"reference/{lab}/{entry.module}.py")
            stale.append(f'{entry.file}:{entry.line}: {marker} quotes "{entry.fragment}", '
                         f"which no docstring of {where} holds")
        elif not named and len(located) > 1:
            stale.append(f'{entry.file}:{entry.line}: {marker} quotes "{entry.fragment}", '
                         f"which the docstrings of {', '.join(d.name for d, _ in located)} all "
                         "hold: name the function, Docstring (NAME)")
            located = []
        for doc, hit in located:
            for index in hit:
                key = (doc.file, doc.name, doc.sentences[index])
                if key in table:
                    table[key].mapped.append(entry)
    for entry in ALLOWED:
        if entry.lab != lab:
            continue
        targets = _allowed_docs(entry, docs)
        hits = [(doc, _locate(entry.fragment, doc)) for doc in targets]
        keys = [(doc.file, doc.name, doc.sentences[i]) for doc, hit in hits if hit for i in hit]
        keys = [key for key in keys if key in table]
        if entry.category not in CATEGORIES:
            stale.append(f"ALLOWED ({entry.name}): unknown category {entry.category!r}")
        if not keys:
            stale.append(f'ALLOWED ({entry.name}): "{entry.fragment}" is no promise sentence '
                         f"of {entry.name} in {lab} (changed, or no promise any more)")
        for key in keys:
            table[key].allowed.append(entry)
    return list(table.values()), stale


def _describe(promise: Promise) -> str:
    return f'  {promise.file}:{promise.line}: {promise.name}: "{promise.sentence}"'


def test_sentences_are_split_where_the_text_says():
    text = ("Returns (n,). Hint: use `torch.xlogy`. It is 1e-10 here.\n\n"
            "State:\n  values: float (runs, k), the estimates; they start at\n"
            "          `initial_value` (e.g. 0).\n  counts: int (runs, k).\n"
            "1. the first step, q . k\n   then more;\n2. the second.")
    assert split_sentences(text) == [
        "Returns (n,).", "Hint: use `torch.xlogy`. It is 1e-10 here.", "State:",
        "values: float (runs, k), the estimates; they start at `initial_value` (e.g. 0).",
        "counts: int (runs, k).", "1. the first step, q . k then more;", "2. the second."]
    assert promise_kinds("Hint: `np.argmax` returns the *first* maximum, at most 1.") == []
    assert promise_kinds("Pulling an arm (S&B section 2.3) pays its value.") == []
    assert promise_kinds("Returns a float64 scalar.") == ["dtype"]
    assert promise_kinds("Keep the token that crosses p.") == ["boundary"]
    assert promise_kinds("Record it before the step.") == ["order"]
    assert promise_kinds("Returns (batch, d_sae).") == ["shape"]


def test_fragments_match_across_line_breaks_and_ellipses():
    doc = Docstring("lab0", "reference/lab0/x.py", "f", 1, True,
                    ["Returns `float64`, accurate to about 1e-10.", "Then it stops."])
    assert _locate("float64, accurate\n to about", doc) == [0]
    assert _locate("Returns float64 ... it stops", doc) == [0, 1]
    assert _locate("accurate to 1e-9", doc) is None
    text = '# Docstring (f, g): "a b" and "c"; (module) "d" -- "not quoted"'
    entries = []
    for marker in _MARKER.finditer(text):
        assert marker.group(1) == "f, g"
        entries.append(marker)
    assert len(entries) == 1


@pytest.mark.parametrize("lab", LABS)
def test_the_extractor_finds_the_functions_students_write(lab):
    docs = all_docstrings(lab)
    for path in sorted((REPO / "reference" / lab).glob("*.py")):
        written = [function.name for function in student_functions(path.read_text())]
        if written:
            file = path.relative_to(REPO).as_posix()
            assert any(p.file == file for p in promises(lab)), f"no promise found in {file}"
            found = {doc.name for doc in docs if doc.file == file and doc.student}
            # Every function students write (as the stubs and gates see them) is read; a
            # method without a docstring of its own is read through its class's.
            assert all(name in found or name.split(".")[0] in found for name in written), \
                (file, sorted(set(written) - found))
    assert any(doc.student for doc in docs)


@pytest.mark.parametrize("lab", LABS)
def test_every_promise_is_mapped_to_a_test_or_allowed(lab):
    rows, _ = coverage(lab)
    missing = [row.promise for row in rows if not row.mapped and not row.allowed]
    assert not missing, (
        f"{len(missing)} promise(s) of the {lab} docstrings (a number, bound, boundary, dtype, "
        f"shape or order) have no test mapped to them. Add a comment\n"
        f'    # Docstring (FUNCTION): "a distinctive fragment of the sentence"\n'
        f"above the test in autograder/{lab}/test_*.py that draws an input at that promise's "
        f"boundary, or an entry in ALLOWED (tests/test_promise_map.py) with the reason no "
        f"test does:\n" + "\n".join(_describe(p) for p in missing))


@pytest.mark.parametrize("lab", LABS)
def test_no_map_comment_or_allowance_is_stale(lab):
    _, stale = coverage(lab)
    assert not stale, (
        "map comments or allow-list entries that quote no current promise (a docstring changed?"
        " a name misspelt?); quote the sentence as it reads now:\n" + "\n".join(stale))


def _report(verbose: bool) -> None:
    """Per file: the promises, how many a test is mapped to, how many are allowed (by
    category); then every UNCHECKED entry, and with `verbose` every promise."""
    for lab in LABS:
        rows, stale = coverage(lab)
        print(f"== {lab}: {len(rows)} promises")
        for file in sorted({row.promise.file for row in rows}):
            mine = [row for row in rows if row.promise.file == file]
            mapped = sum(1 for row in mine if row.mapped)
            only = [row.allowed[0].category for row in mine if row.allowed and not row.mapped]
            partly = [row.allowed[0].category for row in mine if row.allowed and row.mapped]
            missing = sum(1 for row in mine if not row.mapped and not row.allowed)
            counts = ", ".join(f"{only.count(c)} {c}" for c in CATEGORIES if only.count(c))
            part = ", ".join(f"{partly.count(c)} {c}" for c in CATEGORIES if partly.count(c))
            print(f"  {file}: {len(mine)} promises, {mapped} mapped"
                  + (f" (of which partly open: {part})" if part else "")
                  + (f", allowed: {counts}" if counts else "")
                  + (f", {missing} MISSING" if missing else ""))
        for row in rows:
            for entry in row.allowed:
                if entry.category == "UNCHECKED":
                    print(f"  UNCHECKED {row.promise.name}"
                          f"{' (sentence otherwise mapped)' if row.mapped else ''}: "
                          f'"{entry.fragment}": {entry.reason}')
        if verbose:
            for row in rows:
                status = ", ".join(sorted({f"{Path(e.file).name}:{e.line}" for e in row.mapped}))
                status += "".join(f" [{e.category}: {e.reason}]" for e in row.allowed)
                print(f"  {row.promise.name}: {row.promise.sentence}\n"
                      f"      -> {status or 'MISSING'}")
        for line in stale:
            print("  STALE", line)


if __name__ == "__main__":
    _report(verbose="-v" in sys.argv)
