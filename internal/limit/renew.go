package limit

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// renewBatch is how many leases one renewal call carries at most, so no
// single script holds Redis up for long.
const renewBatch = 500

// renewLoop renews the leases held every third of the lease period, so
// that two renewals can fail before a live stream's slot expires.
func (s *Shared) renewLoop() {
	defer close(s.done)
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if s.conn.Up() {
			s.renew()
		}
	}
}

// renewScript sets the expiry of each lease ARGV[i+1] in the global set
// KEYS[1] and its caller's set KEYS[i+1]. It adds a lease that is gone:
// after Redis restarted empty, the streams still running count again.
var renewScript = redis.NewScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
  redis.call('ZADD', KEYS[i], now + lease, ARGV[i])
  redis.call('PEXPIRE', KEYS[i], 2 * lease)
end
redis.call('PEXPIRE', KEYS[1], 2 * lease)
return 0`)

// renew renews every lease held, in batches of renewBatch. Releases wait
// until it is done.
func (s *Shared) renew() {
	s.renewing.Lock()
	defer s.renewing.Unlock()
	s.mu.Lock()
	keys := []string{s.globalKey()}
	args := []any{s.lease.Milliseconds()}
	for name, caller := range s.leases {
		keys = append(keys, s.callerKey(caller))
		args = append(args, name)
	}
	s.mu.Unlock()
	for len(keys) > 1 {
		n := min(len(keys)-1, renewBatch)
		batchKeys := append([]string{keys[0]}, keys[1:1+n]...)
		batchArgs := append([]any{args[0]}, args[1:1+n]...)
		if renewScript.Run(context.Background(), s.conn, batchKeys, batchArgs...).Err() != nil {
			return // Redis is down: the prober notices it come back
		}
		keys = append(keys[:1], keys[1+n:]...)
		args = append(args[:1], args[1+n:]...)
	}
	s.renewals.Add(1)
}
