"""The containment module's pure parts: rulesets per Landlock ABI, seccomp, ELF."""

from __future__ import annotations

import os
import struct

import pytest

from gatekeeper.login import contain as c

READ = c.FS_READ_FILE | c.FS_READ_DIR


@pytest.mark.parametrize(
    ("abi", "fs", "net", "scoped"),
    [
        (1, (1 << 13) - 1, 0, 0),
        (2, (1 << 14) - 1, 0, 0),
        (3, (1 << 15) - 1, 0, 0),
        (4, (1 << 15) - 1, 3, 0),
        (5, (1 << 16) - 1, 3, 0),
        (6, (1 << 16) - 1, 3, 3),
        (7, (1 << 16) - 1, 3, 3),
    ],
)
def test_every_right_the_abi_knows_is_handled(abi: int, fs: int, net: int, scoped: int) -> None:
    rs = c.build_ruleset(
        abi,
        executables=["/bin/x", "/lib/ld"],
        write=[("/w", True), ("/f", False)],
        terminals=["/dev/null"],
    )
    assert (rs.handled_fs, rs.handled_net, rs.scoped) == (fs, net, scoped)
    rules = {r.path: r.access for r in rs.rules}
    assert rules["/"] == READ
    assert rules["/bin/x"] == rules["/lib/ld"] == c.FS_EXECUTE | c.FS_READ_FILE
    # Nothing but the executables may be executed; no sockets or devices may be made.
    for path, access in rules.items():
        if path not in ("/bin/x", "/lib/ld"):
            assert not access & c.FS_EXECUTE
        assert not access & (c.FS_MAKE_SOCK | c.FS_MAKE_CHAR | c.FS_MAKE_BLOCK)
        assert access & ~fs == 0
    assert rules["/w"] & c.FS_MAKE_REG
    assert rules["/w"] & c.FS_REMOVE_FILE
    assert rules["/f"] & ~(c.FS_WRITE_FILE | c.FS_READ_FILE | c.FS_TRUNCATE) == 0
    assert rules["/dev/null"] & c.FS_WRITE_FILE
    assert bool(rules["/dev/null"] & c.FS_IOCTL_DEV) is (abi >= 5)


def test_abi_zero_is_refused() -> None:
    with pytest.raises(c.ContainmentError, match="Landlock ABI 0 is older than 1"):
        c.build_ruleset(0, executables=[], write=[], terminals=[])


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


def run_filter(program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """A tiny classic-BPF interpreter for the instructions the filter uses."""
    insns = decode(program)
    pc, acc = 0, 0
    data = {0: nr, 4: arch, 16: arg0}
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = data[k]
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x45:
            pc += 1 + (jt if acc & k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(code)


EPERM = 0x00050001
ALLOW = 0x7FFF0000


@pytest.mark.parametrize(
    ("arch", "socket", "read"), [(c.AUDIT_ARCH_X86_64, 41, 0), (c.AUDIT_ARCH_AARCH64, 198, 63)]
)
def test_the_filter_denies_sockets_and_allows_the_rest(arch: int, socket: int, read: int) -> None:
    program = c.seccomp_program(arch, 7)
    assert run_filter(program, arch, socket) == EPERM
    assert run_filter(program, arch, 425) == EPERM  # io_uring_setup
    assert run_filter(program, arch, read) == ALLOW
    assert run_filter(program, 0x40000003, read) == EPERM  # i386 entry: another table


@pytest.mark.parametrize(
    ("arch", "clone"), [(c.AUDIT_ARCH_X86_64, 56), (c.AUDIT_ARCH_AARCH64, 220)]
)
def test_threads_yes_processes_no(arch: int, clone: int) -> None:
    program = c.seccomp_program(arch, 7)
    thread = 0x3D0F00  # glibc pthread_create's flags, CLONE_THREAD among them
    assert run_filter(program, arch, clone, thread) == ALLOW
    assert run_filter(program, arch, clone, 0x01200011) == EPERM  # fork(): SIGCHLD|SETTID...
    assert run_filter(program, arch, clone, 0x4111) == EPERM  # posix_spawn: VM|VFORK
    assert run_filter(program, arch, 435) == 0x00050000 | 38  # clone3: ENOSYS, libc falls back
    if arch == c.AUDIT_ARCH_X86_64:
        assert run_filter(program, arch, 57) == EPERM  # fork
        assert run_filter(program, arch, 58) == EPERM  # vfork


def test_x32_numbers_are_denied() -> None:
    program = c.seccomp_program(c.AUDIT_ARCH_X86_64, 7)
    assert run_filter(program, c.AUDIT_ARCH_X86_64, 0x40000000 | 0) == EPERM


def test_truncate_is_denied_only_without_the_landlock_right() -> None:
    old, new = c.seccomp_program(c.AUDIT_ARCH_X86_64, 2), c.seccomp_program(c.AUDIT_ARCH_X86_64, 3)
    assert run_filter(old, c.AUDIT_ARCH_X86_64, 76) == EPERM
    assert run_filter(new, c.AUDIT_ARCH_X86_64, 76) == ALLOW


def test_unknown_architectures_are_refused() -> None:
    with pytest.raises(
        c.ContainmentError, match="containment supports x86_64 and aarch64, not 'riscv64'"
    ):
        c.machine_arch("riscv64")
    with pytest.raises(c.ContainmentError):
        c.seccomp_program(0x40000003, 7)


def test_the_elf_interpreter_of_a_real_binary() -> None:
    with open("/usr/bin/python3", "rb") as f:
        head = f.read(1 << 16)
    interp = c.elf_interpreter(head)
    assert interp is not None
    assert "ld-linux" in interp
    paths = c.executables("/usr/bin/python3")
    assert len(paths) == 2
    assert paths[0].startswith("/usr/bin/python3")


def test_a_script_brings_its_interpreter(tmp_path: object) -> None:

    script = os.path.join(str(tmp_path), "s")
    with open(script, "w") as f:
        f.write("#!/bin/sh\necho\n")
    paths = c.executables(script)
    assert paths[0] == script
    assert paths[1] == os.path.realpath("/bin/sh")
    assert len(paths) == 3


def test_not_an_elf_file() -> None:
    with pytest.raises(c.ContainmentError, match="not an ELF file"):
        c.elf_interpreter(b"hello")


def test_dev_is_not_readable_as_a_whole_only_safe_devices_are(tmp_path) -> None:
    """The guest's other ptys (0620, the guest's own) are under /dev: not readable."""
    for name in ("usr", "dev", "etc"):
        (tmp_path / name).mkdir()
    (tmp_path / "file").touch()  # a file at the top: no rule (directory rights on it: EINVAL)
    roots = c.readable_roots(str(tmp_path))
    paths = [path for path, _ in roots]
    assert (str(tmp_path / "usr"), True) in roots
    assert (str(tmp_path / "etc"), True) in roots
    assert str(tmp_path / "dev") not in paths
    assert str(tmp_path / "file") not in paths
    assert ("/dev/null", False) in roots
    assert not [p for p in paths if p.startswith("/dev/pts")]
    rules = {
        r.path
        for r in c.build_ruleset(7, executables=[], write=[], terminals=[], readable=roots).rules
    }
    assert "/" not in rules
    assert str(tmp_path / "dev") not in rules


def test_a_write_path_behind_a_symlink_is_refused(tmp_path) -> None:
    """ATTACK: session 1 swaps W/notes for a link to /; session 2 would write anywhere."""
    work = tmp_path / "w"
    (work / "notes").mkdir(parents=True)
    # CONTROL: the real directory is accepted.
    assert c.write_paths([str(work / "notes")]) == [(str(work / "notes"), True)]
    (work / "notes").rmdir()
    (work / "notes").symlink_to("/")
    with pytest.raises(c.ContainmentError, match="is or passes through a symlink"):
        c.write_paths([str(work / "notes")])
    (work / "file").touch()
    link = tmp_path / "via"
    link.symlink_to(work)
    with pytest.raises(c.ContainmentError, match="is or passes through a symlink"):
        c.write_paths([str(link / "file")])
    assert c.write_paths([str(tmp_path / "missing")]) == []
