# stacks.py: the goroutine stacks of a running Go process, by the function
# each goroutine started in: how many there are of each stack size, and how
# much of the stacks is in use. Go's profiles give no stack sizes.
#
#   gdb -p PID -batch -ex "source internal/bench/gdb/stacks.py"
import gdb
from collections import Counter

allgs = gdb.parse_and_eval("'runtime.allgs'")
count, total, used = Counter(), Counter(), Counter()
names = {}


def name(pc):
    if pc not in names:
        words = gdb.execute("info symbol %d" % pc, to_string=True).split()
        names[pc] = words[0] if words else hex(pc)
    return names[pc]


for i in range(int(allgs["len"])):
    g = allgs["array"][i]
    if int(g["atomicstatus"]["value"]) == 6:  # _Gdead
        continue
    lo, hi, sp = int(g["stack"]["lo"]), int(g["stack"]["hi"]), int(g["sched"]["sp"])
    fn = name(int(g["startpc"]))
    count[(fn, (hi - lo) // 1024)] += 1
    total[fn] += hi - lo
    used[fn] += hi - sp if sp else 0

print("goroutines  started in  stack size")
for (fn, kib), n in count.most_common(20):
    print("%10d  %s  %d KiB" % (n, fn, kib))
print("stacks in all, and in use where parked (MiB):")
for fn, size in total.most_common(8):
    print("%8.1f %8.1f  %s" % (size / 2**20, used[fn] / 2**20, fn))
