"""Every code example shipped to students runs, and does what its comment says (issue 23).

- Docstring examples are doctests (">>>" with the output they promise), run on the reference
  of every lab, each file in a fresh interpreter in its own folder. The hooks.py example
  ablates a head and shows it against the same head's W_O set to zero; the example it
  replaced (zeroing index 3 of the second dimension of hook_z, a position) fails that check.
- The handouts' Python blocks run in the lab's reference folder, with the shapes their
  comments state asserted after them.
- The handouts' shell lines, and the commands they quote inline (`python model.py train`),
  name scripts, subcommands and options that exist (each script's own --help lists them) and
  make targets that exist (make -n).
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import REPO_ROOT

LABS = ("lab1", "lab2", "lab3")
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)
# A command quoted inline in the prose: `python model.py train`, `make test lab3`.
INLINE = re.compile(r"(?<!`)`((?:python|make) [^`\n]+)`(?!`)")

# What the handouts' Python blocks promise in their comments, checked after the block runs
# (keyed by the block's first line).
PROMISES = {
    "from grokking import load_checkpoint, last_position": (
        "p = checkpoint.config.p if hasattr(checkpoint, 'config') else logits.shape[1]\n"
        "assert logits.shape == (p * p, p), logits.shape\n"
        "assert neurons.shape == (p * p, 512), neurons.shape\n"
        "assert next(model.parameters()).dtype == torch.float32\n"
    ),
}


def _run(code_or_args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *code_or_args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def _doctested() -> list[Path]:
    """The reference files with docstring examples; a file that is an earlier lab's, byte for
    byte (lab 3's hooks.py is lab 2's, its example built on lab 2's Transformer), is run in
    that lab's folder only."""
    found: dict[bytes, Path] = {}
    for lab in LABS:
        for path in sorted((REPO_ROOT / "reference" / lab).glob("*.py")):
            if ">>>" in path.read_text():
                found.setdefault(path.read_bytes(), path)
    return sorted(found.values())


def test_there_are_docstring_examples_to_run():
    assert REPO_ROOT / "reference" / "lab2" / "hooks.py" in _doctested()


@pytest.mark.parametrize("path", _doctested(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_docstring_examples_run(path):
    completed = _run(["-m", "doctest", path.name], path.parent)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-2000:]


def test_the_hooks_example_fails_when_it_zeroes_a_position(tmp_path):
    source = (REPO_ROOT / "reference" / "lab2" / "hooks.py").read_text()
    ablation = "    ...     z[:, :, 3] = 0 "
    assert source.count(ablation) == 1
    (tmp_path / "hooks.py").write_text(source.replace(ablation, "    ...     z[:, 3] = 0    "))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "reference" / "lab2")}
    completed = subprocess.run([sys.executable, "-m", "doctest", "hooks.py"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120, env=env)
    assert completed.returncode != 0 and "Expected:\n    True\nGot:\n    False" in \
        completed.stdout, completed.stdout[-2000:]


def _blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for lab in LABS:
        handout = (REPO_ROOT / "reference" / lab / "README.md").read_text()
        found += [(lab, body) for kind, body in BLOCK.findall(handout) if kind == language]
    return found


@pytest.mark.parametrize("lab, block", _blocks("python"),
                         ids=lambda value: value.splitlines()[0][:40])
def test_handout_python_blocks_run(lab, block):
    first = block.splitlines()[0]
    check = PROMISES.get(first)
    assert check is not None, f"no stated promise for the handout block starting {first!r}"
    completed = _run(["-c", "import torch\n" + block + check], REPO_ROOT / "reference" / lab)
    assert completed.returncode == 0, completed.stderr[-3000:]


def _commands() -> list[tuple[str, str]]:
    commands = []
    for lab, block in _blocks("bash"):
        for line in block.splitlines():
            line = line.split("#")[0].strip().rstrip("\\").strip()
            for part in line.split("&&"):
                if part.strip().startswith(("python ", "make ")):
                    commands.append((lab, part.strip()))
    for lab in LABS:
        prose = BLOCK.sub("", (REPO_ROOT / "reference" / lab / "README.md").read_text())
        commands += [(lab, command.strip()) for command in INLINE.findall(prose)]
    return list(dict.fromkeys(commands))


def test_the_handouts_have_commands():
    assert any(command.startswith("python") for _, command in _commands())
    assert any(command.startswith("make") for _, command in _commands())


@pytest.mark.parametrize("lab, command", _commands(), ids=lambda value: value[:50])
def test_handout_commands_exist(lab, command):
    words = shlex.split(command)
    if words[0] == "make":
        completed = subprocess.run(["make", "-n", *words[1:]], cwd=REPO_ROOT,
                                   capture_output=True, text=True, timeout=60)
        assert completed.returncode == 0, completed.stderr[-2000:]
        return
    script, rest = words[1], words[2:]
    if not rest:
        # A plain `python X.py` runs the script's whole demonstration (a training, minutes):
        # that it exists and has a main block is what the line promises here; `make bench`
        # runs the demonstrations.
        path = REPO_ROOT / "reference" / lab / script
        assert path.is_file(), f"{command}: {script} is not in reference/{lab}"
        assert '__name__ == "__main__"' in path.read_text(), f"{command}: {script} has no main"
        return
    positional = []
    for word in rest:
        if word.startswith("-"):
            break
        positional.append(word)
    returncode, output = _help(lab, script, tuple(positional))
    assert returncode == 0, output[-2000:]
    for flag in (word.split("=")[0] for word in rest if word.startswith("--")):
        assert flag in output, f"{command}: {script} has no option {flag}"


@functools.cache
def _help(lab: str, script: str, positional: tuple[str, ...]) -> tuple[int, str]:
    """A script's --help (of its subcommand, where the first words name one): each script is
    started once per subcommand, however many handout lines use it."""
    folder = REPO_ROOT / "reference" / lab
    completed = _run([script, *positional, "--help"], folder)
    if completed.returncode != 0 and positional:
        # A positional word that is not a subcommand (a folder) does not take the --help.
        completed = _run([script, "--help"], folder)
    return completed.returncode, completed.stdout + completed.stderr
