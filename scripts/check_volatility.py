"""Opens crash dumps with Volatility 3's crash dump layer and checks what it maps.

For each dump: the layer's own header check (signature PAGE, ValidDump DU64) must accept
it, the layer must build its segments (a DumpType 1 run list or a DumpType 5 bitmap), and
pages read through the layer (the first and last of every run and a spread between them)
must equal the file's bytes where this script's own reading of the header puts them
(DUMP_HEADER64's PHYSICAL_MEMORY_DESCRIPTOR64 at 0x88; _SUMMARY_DUMP at 0x2000 with
HeaderSize at 0x20, BitmapSize at 0x30, the bitmap at 0x38). Prints one line per dump;
exits 1 if any dump fails.
"""

import os
import struct
import sys

from volatility3.framework import contexts
from volatility3.framework.layers import crash, physical

PAGE = 0x1000


def own_map(data):
    """(pfn, file offset) of every page, from the header alone."""
    dump_type = struct.unpack_from("<I", data, 0xF98)[0]
    pages = []
    if dump_type == 1:
        runs = struct.unpack_from("<I", data, 0x88)[0]
        offset = 0x2000
        for run in range(runs):
            base, count = struct.unpack_from("<QQ", data, 0x88 + 16 + 16 * run)
            for index in range(count):
                pages.append((base + index, offset))
                offset += PAGE
    elif dump_type == 5:
        signature = data[0x2000:0x2004].decode("latin-1")
        header_size, _present, bits = struct.unpack_from("<QQQ", data, 0x2020)
        offset = header_size
        bitmap = data[0x2038 : 0x2038 + (bits + 7) // 8]
        for pfn in range(bits):
            if bitmap[pfn // 8] >> (pfn % 8) & 1:
                pages.append((pfn, offset))
                offset += PAGE
        dump_type = "5 (%s)" % signature
    return dump_type, pages


def sample(pages):
    """The first and last page of every run of consecutive page numbers, and a spread."""
    chosen = set(range(0, len(pages), max(1, len(pages) // 16)))
    for index, (pfn, _) in enumerate(pages):
        if index == 0 or pages[index - 1][0] != pfn - 1:
            chosen.add(index)
        if index == len(pages) - 1 or pages[index + 1][0] != pfn + 1:
            chosen.add(index)
    return [pages[index] for index in sorted(chosen)]


def check(path, number):
    with open(path, "rb") as file:
        data = file.read()
    dump_type, pages = own_map(data)
    context = contexts.Context()
    base_name, crash_name = "base%d" % number, "crash%d" % number
    context.config[base_name + ".location"] = "file://" + os.path.abspath(path)
    context.add_layer(physical.FileLayer(context, base_name, base_name))
    crash.WindowsCrashDump64Layer.check_header(context.layers[base_name])
    context.config[crash_name + ".base_layer"] = base_name
    layer = crash.WindowsCrashDump64Layer(context, crash_name, crash_name)
    context.add_layer(layer)
    checked, wrong = 0, []
    for pfn, offset in sample(pages):
        try:
            got = layer.read(pfn * PAGE, PAGE)
        except Exception as error:  # an address the layer does not map
            wrong.append("page %#x: %s" % (pfn, type(error).__name__))
            continue
        if got != data[offset : offset + PAGE]:
            wrong.append("page %#x differs" % pfn)
        checked += 1
    segments = len(layer._segments)
    verdict = "OK" if not wrong else "FAIL " + "; ".join(wrong[:4])
    print(
        "%s: %s DumpType %s, %d pages in %d segments, %d pages read back through the layer"
        % (path, verdict, dump_type, len(pages), segments, checked)
    )
    return not wrong


def main():
    ok = True
    for number, path in enumerate(sys.argv[1:]):
        try:
            ok &= check(path, number)
        except Exception as error:
            print("%s: FAIL %s: %s" % (path, type(error).__name__, error))
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
