# growth.py: where goroutines' stacks grow to 8 KiB or more, with the call
# chain that needed it and each frame's size. A stack, once grown, stays
# grown until a garbage collection finds it three quarters unused.
#
#   gdb -p PID -batch -ex "source internal/bench/gdb/growth.py"
#
# It breaks on runtime.copystack, which runs on the system stack, and walks
# the growing goroutine's frame pointers from where morestack saved them.
# Each distinct chain is printed once. Detach with Ctrl-C or by ending the
# process.
import struct
import gdb

MIN_SIZE = 8192
inferior = gdb.selected_inferior()
seen = set()


def name(pc):
    words = gdb.execute("info symbol %d" % pc, to_string=True).split()
    return words[0] if words else hex(pc)


def word(addr):
    return struct.unpack("<Q", bytes(inferior.read_memory(addr, 8)))[0]


class Growth(gdb.Breakpoint):
    def stop(self):
        newsize = int(gdb.parse_and_eval("newsize"))
        if newsize < MIN_SIZE:
            return False
        gp = gdb.parse_and_eval("gp")
        hi = int(gp["stack"]["hi"])
        chain = ["%s (needs more at depth %d)" % (name(int(gp["sched"]["pc"])), hi - int(gp["sched"]["sp"]))]
        bp = int(gp["sched"]["bp"])  # the frame of the caller's caller
        while bp:
            up = word(bp)
            chain.append("%s [frame %d, depth %d]" % (name(word(bp + 8)), up - bp if up else 0, hi - bp))
            bp = up
        key = (newsize, tuple(chain))
        if key not in seen:
            seen.add(key)
            old = hi - int(gp["stack"]["lo"])
            print("=== %s: %d -> %d bytes" % (name(int(gp["startpc"])), old, newsize))
            for line in chain:
                print("    " + line)
        return False


Growth("runtime.copystack")
gdb.execute("continue")
