"""A lab: one folder, one documented file that says how to grade it.

    runtime/labs/lost_update/          (or any folder of an instructor's)
        lab.py        what the grader runs -- the fields below
        handout.md    the exercise in the lecture's words    } what `vos lab start`
        counter.py    the starter, wrong in the classic way  } hands out
        corpus.txt    failing schedules of the starter and the known wrong
                      fixes, one token a line (`vos lab sound --update-corpus`)
        reference.py, wrong/*.py    an instructor's lab keeps its solution
                      and its wrong fixes here; the built-in labs keep theirs
                      in tests/labs/NAME/, out of what is handed out

lab.py defines:

    TITLE, TITLE_ZH     "lost update", "丢失的更新"
    IDEA                the lecture's idea it drills, one line
    ORDER               its place in `vos lab`'s list
    STUDENT_FILE        the file the student writes and `vos lab check` grades
    REQUIRED            the functions that file must define
    program(student, k) thread 0 of a controlled kernel: set up, start the
                        threads (they call the student's functions), join
                        them, raise AssertionError when the invariant breaks
    KERNEL              kernel options (max_steps: the step budget, beyond
                        which a run is a livelock: StepLimit)
    BUDGET              runs per grading stage, over the defaults below
    HINTS               nudges, in order (`vos lab hint`)

Labs are found in runtime/labs/ and in the folders of $VOS_LABS (a path
list).  A student's file is imported as a module of its own name per path
(`vos_student_<lab>_<hash>`), so that its functions travel by reference to
the VPs that run them, and any number of files can be graded in one process.
"""

import dataclasses
import hashlib
import importlib
import importlib.util
import os
import sys

BUILTIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "labs")
BUDGET = dict(regression=200, exhaustive_1=3000, exhaustive_2=6000, sampled=600)
KERNEL = dict(max_steps=5000)


class LabError(Exception):
    """No such lab, or a lab folder that does not say what the grader needs."""


class SubmissionError(Exception):
    """The student's file cannot be graded (it does not compile, or lacks a
    function); the message says what to write."""


@dataclasses.dataclass
class Lab:
    name: str
    folder: str
    module: object
    builtin: bool

    # --- what lab.py says ----------------------------------------------------------

    def __getattr__(self, attr):          # TITLE, IDEA, program, ... straight from lab.py
        if attr.isupper() or attr == "program":
            try:
                return getattr(self.__dict__["module"], attr)
            except AttributeError:
                raise LabError(f"lab {self.__dict__['name']!r}: lab.py defines no {attr}") from None
        raise AttributeError(attr)

    @property
    def order(self):
        return getattr(self.module, "ORDER", 99)

    @property
    def budget(self):
        return {**BUDGET, **getattr(self.module, "BUDGET", {})}

    @property
    def kernel_options(self):
        return {**KERNEL, **getattr(self.module, "KERNEL", {})}

    @property
    def hints(self):
        return tuple(getattr(self.module, "HINTS", ()))

    @property
    def handout(self):
        return os.path.join(self.folder, "handout.md")

    @property
    def starter(self):
        return os.path.join(self.folder, self.STUDENT_FILE)

    @property
    def corpus_file(self):
        return os.path.join(self.folder, "corpus.txt")

    def corpus(self):
        """The regression corpus: tokens, one a line ('#' comments)."""
        try:
            with open(self.corpus_file, encoding="utf-8") as f:
                return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
        except FileNotFoundError:
            return []

    def solutions(self):
        """(reference path or None, [wrong fix paths]) kept beside lab.py (an
        instructor's lab) or in tests/labs/NAME (a built-in one)."""
        for folder in (self.folder, os.path.join(os.path.dirname(os.path.dirname(BUILTIN)), "tests", "labs",
                                                 self.name)):
            ref = os.path.join(folder, "reference.py")
            if os.path.isfile(ref):
                wrong = os.path.join(folder, "wrong")
                wrongs = sorted(os.path.join(wrong, f) for f in os.listdir(wrong) if f.endswith(".py")) \
                    if os.path.isdir(wrong) else []
                return ref, wrongs
        return None, []

    # --- a student's file ----------------------------------------------------------

    def load_student(self, path):
        """The student's file as a module (SubmissionError if it cannot run)."""
        path = os.path.abspath(path)
        if not os.path.isfile(path):
            raise SubmissionError(f"no file {path}: `vos lab start {self.name}` writes the starter")
        digest = hashlib.sha1(path.encode()).hexdigest()[:10]
        name = f"vos_student_{self.name}_{digest}"
        sys.modules.pop(name, None)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module          # before it runs: its functions pickle by this name
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            sys.modules.pop(name, None)
            raise SubmissionError(f"{os.path.basename(path)} does not compile: {e}") from None
        except Exception as e:  # noqa: BLE001 - anything the file does at import is its author's
            sys.modules.pop(name, None)
            raise SubmissionError(f"{os.path.basename(path)} fails when imported: {type(e).__name__}: {e}") \
                from None
        missing = [f for f in self.REQUIRED if not callable(getattr(module, f, None))]
        if missing:
            raise SubmissionError(f"{os.path.basename(path)} must define {', '.join(f + '()' for f in missing)} "
                                  f"(see the handout: {self.handout})")
        return module

    def program_for(self, path):
        """(program(k), kernel options, its name for tokens) for a student's file."""
        student = self.load_student(path)
        lab_program = self.program

        def program(k):
            return lab_program(student, k)
        return program, dict(self.kernel_options), f"lab:{self.name}:{os.path.abspath(path)}"


# --- finding labs ---------------------------------------------------------------------------------

def _folders():
    """Every lab folder: the built-in ones, then $VOS_LABS's."""
    roots = [BUILTIN] + [p for p in os.environ.get("VOS_LABS", "").split(os.pathsep) if p]
    for root in roots:
        if os.path.isfile(os.path.join(root, "lab.py")):
            yield root
            continue
        if os.path.isdir(root):
            for entry in sorted(os.listdir(root)):
                folder = os.path.join(root, entry)
                if os.path.isfile(os.path.join(folder, "lab.py")):
                    yield folder


def _load(folder):
    folder = os.path.abspath(folder)
    name = os.path.basename(folder)
    builtin = os.path.dirname(folder) == BUILTIN
    if builtin:
        module = importlib.import_module(f"runtime.labs.{name}.lab")
    else:
        modname = f"vos_lab_{name}_{hashlib.sha1(folder.encode()).hexdigest()[:10]}"
        module = sys.modules.get(modname)
        if module is None:
            spec = importlib.util.spec_from_file_location(modname, os.path.join(folder, "lab.py"))
            module = importlib.util.module_from_spec(spec)
            sys.modules[modname] = module
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # noqa: BLE001
                sys.modules.pop(modname, None)
                raise LabError(f"{folder}/lab.py fails when imported: {type(e).__name__}: {e}") from None
    lab = Lab(name, folder, module, builtin)
    for field in ("TITLE", "STUDENT_FILE", "REQUIRED", "program"):
        getattr(lab, field)                 # LabError now, not in the middle of grading
    return lab


def all_labs():
    """Every lab, in ORDER."""
    return sorted((_load(f) for f in _folders()), key=lambda lab: (lab.order, lab.name))


def find(name):
    """The lab called `name` (or the lab folder at that path)."""
    if os.path.isfile(os.path.join(name, "lab.py")):
        return _load(name)
    for folder in _folders():
        if os.path.basename(folder) == name:
            return _load(folder)
    import difflib
    names = [os.path.basename(f) for f in _folders()]
    close = difflib.get_close_matches(name, names, n=1)
    raise LabError(f"no lab {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "") +
                   f"; the labs are {', '.join(names)} (vos lab lists them)")


__all__ = ["Lab", "LabError", "SubmissionError", "all_labs", "find", "BUDGET", "KERNEL"]
