"""The one loader of submissions: folders, zips, and everything students put in them."""

import stat
import zipfile

import pytest

from autograder.engine.labs import Lab
from autograder.engine.submission import MAX_FILE_BYTES, stage_submission


@pytest.fixture
def lab(tmp_path):
    support = tmp_path / "support"
    support.mkdir()
    (support / "helpers.py").write_text("HELP = 1\n")
    tests_dir = tmp_path / "autograder" / "labx"
    tests_dir.mkdir(parents=True)
    lab = Lab(name="labx", title="Lab X", graded=("alpha.py", "beta.py"), support=("helpers.py",),
              tests_dir=tests_dir)
    return lab, support


def stage(lab_and_support, source, tmp_path, monkeypatch):
    lab, support = lab_and_support
    monkeypatch.setattr(type(lab), "support_dir", property(lambda self: support))
    return stage_submission(lab, source, tmp_path / "staged")


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            if isinstance(data, tuple):  # (data, unix mode)
                info = zipfile.ZipInfo(name)
                info.external_attr = data[1] << 16
                archive.writestr(info, data[0])
            else:
                archive.writestr(name, data)
    return path


def test_folder_with_all_files(lab, tmp_path, monkeypatch):
    source = tmp_path / "submission"
    source.mkdir()
    (source / "alpha.py").write_text("A = 1\n")
    (source / "beta.py").write_text("B = 2\n")
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.missing == []
    assert (staged.root / "alpha.py").read_text() == "A = 1\n"
    assert (staged.root / "helpers.py").read_text() == "HELP = 1\n"


def test_zip_with_enclosing_folder_macosx_and_extras(lab, tmp_path, monkeypatch):
    source = make_zip(tmp_path / "s.zip", {
        "my-lab/alpha.py": "A = 1\n",
        "my-lab/notes.txt": "extra file",
        "__MACOSX/my-lab/._alpha.py": "resource fork",
        "my-lab/.hidden/beta.py": "ignored",
    })
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.found == {"alpha.py": "my-lab/alpha.py"}
    assert staged.missing == ["beta.py"]
    assert staged.missing_reasons() == {"beta": "beta.py was not found in your submission"}


def test_zip_cannot_write_outside_the_staging_folder(lab, tmp_path, monkeypatch):
    source = make_zip(tmp_path / "s.zip", {
        "../../alpha.py": "A = 1\n",
        "/abs/beta.py": "B = 2\n",
        "../../evil.py": "EVIL = 1\n",
    })
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert sorted(p.name for p in staged.root.iterdir()) == ["alpha.py", "beta.py", "helpers.py"]
    assert not (tmp_path / "evil.py").exists()


def test_zip_symlinks_are_ignored(lab, tmp_path, monkeypatch):
    source = make_zip(tmp_path / "s.zip", {
        "alpha.py": ("/etc/passwd", stat.S_IFLNK | 0o777),
        "beta.py": "B = 2\n",
    })
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.missing == ["alpha.py"]
    assert any("symbolic link" in note for note in staged.notes)


def test_oversized_file_is_refused(lab, tmp_path, monkeypatch):
    source = make_zip(tmp_path / "s.zip", {"alpha.py": "#" * (MAX_FILE_BYTES + 1)})
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert "alpha.py" in staged.missing
    assert any("larger than" in note for note in staged.notes)


def test_not_a_zip(lab, tmp_path, monkeypatch):
    source = tmp_path / "s.zip"
    source.write_bytes(b"this is not a zip")
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.missing == ["alpha.py", "beta.py"]
    assert any("could not be opened as a zip" in note for note in staged.notes)


def test_duplicates_take_the_shallowest(lab, tmp_path, monkeypatch):
    source = make_zip(tmp_path / "s.zip", {"old/v1/alpha.py": "OLD\n", "alpha.py": "NEW\n"})
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert (staged.root / "alpha.py").read_text() == "NEW\n"
    assert any("appears 2 times" in note for note in staged.notes)


def test_folder_holding_the_uploaded_zip(lab, tmp_path, monkeypatch):
    """A Gradescope export keeps an uploaded zip as it is, in the submission's folder."""
    source = tmp_path / "submission_1"
    source.mkdir()
    make_zip(source / "lab-submission.zip", {"alpha.py": "A = 1\n", "beta.py": "B = 2\n"})
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.missing == []
    assert staged.found == {"alpha.py": "alpha.py", "beta.py": "beta.py"}


def test_links_are_refused_at_every_level(lab, tmp_path, monkeypatch):
    """Issue 16: a folder holding only a zip that is a link (to the staff's zip, say), a
    linked folder and a linked file are never graded."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "alpha.py").write_text("A = 'staff'\n")
    staff = make_zip(tmp_path / "staff.zip", {"alpha.py": "A = 'staff'\n"})
    source = tmp_path / "submission"
    source.mkdir()
    (source / "upload.zip").symlink_to(staff)
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.found == {} and "upload.zip is a symbolic link; not graded" in staged.notes

    (source / "upload.zip").unlink()
    (source / "inner").symlink_to(real, target_is_directory=True)
    (source / "beta.py").symlink_to(real / "alpha.py")
    staged = stage(lab, source, tmp_path, monkeypatch)
    assert staged.found == {}
    assert "inner is a symbolic link; ignored" in staged.notes
    assert "beta.py is a symbolic link; ignored" in staged.notes
    linked = tmp_path / "linked"
    linked.symlink_to(real, target_is_directory=True)
    assert stage(lab, linked, tmp_path, monkeypatch).found == {}
