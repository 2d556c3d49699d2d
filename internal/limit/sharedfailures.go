package limit

import (
	"context"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"streamrelay/internal/redisconn"
)

// SharedFailures is a FailureLimiter on Redis, with redis_rate's GCRA, so
// that every instance counts a client's failures together. While Redis is
// down it counts in this instance's own Failures instead.
type SharedFailures struct {
	conn  *redisconn.Conn
	rate  *redis_rate.Limiter
	limit redis_rate.Limit
	local *Failures
}

// NewSharedFailures returns a SharedFailures allowing perMinute failures a
// minute per key; perMinute must be above 0.
func NewSharedFailures(conn *redisconn.Conn, perMinute int) *SharedFailures {
	return &SharedFailures{
		conn:  conn,
		rate:  redis_rate.NewLimiter(prefixed{conn.Client, conn.Prefix()}),
		limit: redis_rate.Limit{Rate: perMinute, Burst: perMinute, Period: time.Minute},
		local: NewFailures(perMinute),
	}
}

// Check implements FailureLimiter: a request of cost 0 reads what is left
// without using any.
func (f *SharedFailures) Check(ctx context.Context, key string, now time.Time) error {
	if f.conn.Up() {
		res, err := f.rate.AllowN(ctx, "fail:"+key, f.limit, 0)
		if err == nil {
			if res.Remaining >= 1 {
				return nil
			}
			// ResetAfter is until all are back; one is back that much sooner.
			each := f.limit.Period / time.Duration(f.limit.Rate)
			wait := res.ResetAfter - time.Duration(f.limit.Burst-1)*each
			return &Rejection{Limit: LimitAuthFailures, RetryAfter: max(wait, 0)}
		}
	}
	f.conn.FailedOpen("auth_failures")
	return f.local.Check(ctx, key, now)
}

// Fail implements FailureLimiter.
func (f *SharedFailures) Fail(ctx context.Context, key string, now time.Time) error {
	if f.conn.Up() {
		if _, err := f.rate.AllowN(ctx, "fail:"+key, f.limit, 1); err == nil {
			return nil
		}
	}
	f.conn.FailedOpen("auth_failures")
	return f.local.Fail(ctx, key, now)
}
