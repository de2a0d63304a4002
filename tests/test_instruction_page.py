"""The instruction page's machine code outside Python: page_harness.c maps the
module's exact bytes as the module does and runs every operation, then four
threads at once (fetch_add and CAS counters, fetch_or/fetch_and of own bits,
an exchange + store spin lock around a plain increment).  The AArch64 bytes
run under qemu-aarch64 (cross-compiled with aarch64-linux-gnu-gcc), the
x86-64 ones natively; each case is skipped where its tools are missing
(Debian: apt install gcc-aarch64-linux-gnu qemu-user)."""

import platform
import shutil
import subprocess

import pytest

from runtime import instruction_page

pytestmark = pytest.mark.timeout(120)

HARNESS = __file__.rsplit("/", 1)[0] + "/page_harness.c"

CASES = {   # machine: (compiler, runner)
    "aarch64": ("aarch64-linux-gnu-gcc", ["qemu-aarch64"]),
    "x86_64": ("gcc", []),
}


def page_header(machine):
    """page.h for the harness: the page image and each operation's offset."""
    code, pad = instruction_page.code_for(machine)
    image, offsets = instruction_page.layout(code, pad)
    lines = ["static const unsigned char PAGE[] = {" + ", ".join(f"0x{b:02x}" for b in image) + "};"]
    lines += [f"#define OFF_{op.upper()} {off}" for op, off in offsets.items()]
    return "\n".join(lines) + "\n"


def test_the_layout_keeps_every_function_aligned_and_whole():
    for machine in CASES:
        code, pad = instruction_page.code_for(machine)
        image, offsets = instruction_page.layout(code, pad)
        for op in instruction_page.OPERATIONS:
            assert offsets[op] % 16 == 0
            assert image[offsets[op]:offsets[op] + len(code[op])] == code[op]
        assert len(image) <= 4096


@pytest.mark.parametrize("machine", sorted(CASES))
def test_the_machine_code_is_right_and_atomic_across_threads(machine, tmp_path):
    compiler, runner = CASES[machine]
    if machine == "x86_64" and platform.machine() != "x86_64":
        pytest.skip("the x86-64 code runs natively only")
    missing = [t for t in [compiler] + runner if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed")
    (tmp_path / "page.h").write_text(page_header(machine))
    exe = tmp_path / "harness"
    subprocess.run([compiler, "-O2", "-static", "-pthread", f"-I{tmp_path}", HARNESS, "-o", str(exe)],
                   check=True, capture_output=True, timeout=60)
    out = subprocess.run(runner + [str(exe)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.endswith("ok\n"), out.stdout + out.stderr


def test_a_page_that_gives_a_wrong_result_is_refused(monkeypatch):
    """The self-check is the gate: a `load` that returns its argument (the
    address) instead of the word must not be trusted."""
    machine = platform.machine()
    if machine not in CASES:
        pytest.skip(f"no instruction page for {machine}")
    table, wrong = {"x86_64": (instruction_page.X86_64, "48 89 f8  c3"),          # mov rax, rdi ; ret
                    "aarch64": (instruction_page.AARCH64, "d65f03c0")}[machine]   # ret (x0 = the address)
    monkeypatch.setitem(table, "load", wrong)
    with pytest.raises(instruction_page.PageRefused, match="wrong result.*load"):
        instruction_page.build()
