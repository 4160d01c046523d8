# gdb script for stack-use.sh. At the entry of dumpcrypt_seal::seal it paints the stack
# below the stack pointer; it reads the painted region back when the work (the X25519
# agreement and seal_into) is done, and again when seal (the work and the wipe) has
# returned. It also collects the secrets of the call, to look for them in that region: the
# Randomness and the payload (seal's arguments), the shared secret (what x25519_agree
# writes) and the three HKDF outputs (what hkdf_sha256 returns).
import os
import re

import gdb

PAINT = 0xA5
DEPTH = 64 * 1024
BACKEND = os.environ.get("BACKEND", "?")

gdb.execute("set pagination off")
gdb.execute("set confirm off")


def entry_address(function):
    """The first instruction of `function` (once the program is loaded and relocated): the
    start of its first line, which must be the symbol itself, not an offset into it."""
    line = gdb.execute(f"info line {function}", to_string=True)
    match = re.search(r"starts at address (0x[0-9a-f]+) <([^>+]+)>", line)
    if not match:
        raise gdb.GdbError(f"stack-use: no entry address for {function}: {line.strip()}")
    return int(match.group(1), 16)


def register(name):
    return int(gdb.parse_and_eval(f"${name}")) & (2**64 - 1)


def read(address, length):
    return bytes(gdb.selected_inferior().read_memory(address, length))


def return_address():
    """The return address, at a function's first instruction."""
    return int.from_bytes(read(register("sp"), 8), "little")


secrets = []  # (name, bytes)


def keep(name, value):
    """A secret to look for, as 16-byte pieces (a piece of a key is a leak too)."""
    for at in range(0, len(value) - 15, 16):
        secrets.append((f"{name}[{at}..{at + 16}]", value[at:at + 16]))


class AtReturn(gdb.Breakpoint):
    """At a call's return address: reads what the call wrote, and goes on."""

    def __init__(self, address, collect):
        super().__init__(f"*{address:#x}", internal=True, temporary=True)
        self.collect = collect

    def stop(self):
        self.collect()
        return False


class AtEntry(gdb.Breakpoint):
    """At each entry of a function that writes a secret through the pointer in `register`:
    reads `length` bytes there when the call returns."""

    def __init__(self, function, pointer_register, name, length):
        super().__init__(f"*{entry_address(function):#x}", internal=True)
        self.pointer_register, self.name, self.length = pointer_register, name, length
        self.calls = 0

    def stop(self):
        pointer = register(self.pointer_register)
        self.calls += 1
        name = f"{self.name} {self.calls}"
        AtReturn(return_address(), lambda: keep(name, read(pointer, self.length)))
        return False


def stop_at_entry(function):
    """Runs to `function`'s first instruction, before its prologue: the stack pointer
    points at the return address and the arguments are still in their registers."""
    gdb.execute(f"tbreak *{entry_address(function):#x}")
    gdb.execute("continue", to_string=True)


def run_to(address):
    gdb.execute(f"tbreak *{address:#x}")
    gdb.execute("continue", to_string=True)


gdb.execute("starti", to_string=True)
# x25519_agree(ephemeral_secret, recipient, shared): the shared secret through rdx.
AtEntry("dumpcrypt_seal::x25519_agree", "rdx", "shared secret", 32)
# hkdf_sha256 returns Result<Zeroizing<[u8; 32]>, SealError> through the pointer in rdi:
# 33 bytes, the key at offset 0 or 1 whatever the layout; both are looked for.
AtEntry("dumpcrypt_seal::hkdf_sha256", "rdi", "HKDF output", 33)

# Recipient::parse first (the test parses the recipient before it seals): how deep it goes.
stop_at_entry("dumpcrypt_seal::recipient::Recipient::parse")
parse_sp = register("sp")
gdb.selected_inferior().write_memory(parse_sp - DEPTH, bytes([PAINT]) * DEPTH)
run_to(return_address())
painted = read(parse_sp - DEPTH, DEPTH)
parse_depth = DEPTH - next(i for i, b in enumerate(painted) if b != PAINT) + 8
print(f"stack-use [{BACKEND}] Recipient::parse needs {parse_depth} bytes of stack")

stop_at_entry("dumpcrypt_seal::seal")
sp = register("sp")
seal_return = return_address()
# System V x86_64: seal(recipient, randomness, payload, out) in rdi, rsi, rdx, rcx.
keep("randomness", read(register("rsi"), 64))
keep("payload", read(register("rdx"), 64))
base = sp - DEPTH
gdb.selected_inferior().write_memory(base, bytes([PAINT]) * DEPTH)


def survey(when):
    """How deep the painted region was written, and which secrets are in it."""
    region = read(base, DEPTH)
    lowest = next(i for i, b in enumerate(region) if b != PAINT)
    used = region[lowest:]
    # What lies below the entry stack pointer, and the 8 bytes of the return address.
    depth = DEPTH - lowest + 8
    found = sorted({name for name, piece in secrets if piece in used})
    print(
        f"stack-use [{BACKEND}] {when}: {depth} bytes deep; "
        + (("secrets there: " + ", ".join(found)) if found else "none of the secrets there")
    )
    return depth, found


stop_at_entry("dumpcrypt_seal::seal_into")
run_to(return_address())
work, _ = survey("when the work is done, before the wipe")
run_to(seal_return)
total, left = survey("when seal has returned")
verdict = "ok" if total > work and not left else "FAIL"
print(
    f"stack-use [{BACKEND}] {verdict}: seal needs {total} bytes of stack (the work {work}, "
    f"the wipe reaching {total - work:+} bytes beyond it); "
    f"{len(secrets)} pieces of secrets looked for, {len(left)} left"
)
gdb.execute("kill")
gdb.execute("quit 0" if verdict == "ok" else "quit 1")
