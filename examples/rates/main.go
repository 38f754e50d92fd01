// Command rates is an Airlock plugin that converts between currencies with
// rates fetched from an HTTP API and cached in the host's key-value store.
// It can do nothing by itself: every outside effect is a host capability
// the operator granted — config (the API's address), http (only that API's
// host), kv (the cache, kept across restarts), clock (cache age).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/airlockhq/airlock/sdk/go/plugin"
)

// maxAge is how long a cached rate is used before it is fetched again.
const maxAge = 10 * time.Minute

// ConvertRequest asks to convert an amount.
type ConvertRequest struct {
	AmountCents int64  `json:"amount_cents"`
	From        string `json:"from"`
	To          string `json:"to"`
}

// ConvertResponse is the converted amount and where its rate came from.
type ConvertResponse struct {
	AmountCents int64   `json:"amount_cents"`
	Rate        float64 `json:"rate"`
	Source      string  `json:"source"` // "api" or "cache"
	AsOf        string  `json:"as_of"`
}

type cached struct {
	Rate    float64 `json:"rate"`
	Fetched int64   `json:"fetched_unix"`
}

func main() {
	p := plugin.New("rates", "1.0.0")
	plugin.HandleJSON(p, "convert", convert)
	// offline shows a denied capability: the operator did not grant fs.read,
	// so reading a local rates file is refused (and audited).
	p.Handle("offline", func(ctx context.Context, _ []byte) ([]byte, error) {
		return plugin.FS.ReadFile(ctx, "rates/latest.json")
	})
	p.Main()
}

func convert(ctx context.Context, req ConvertRequest) (ConvertResponse, error) {
	from, to := strings.ToUpper(req.From), strings.ToUpper(req.To)
	if len(from) != 3 || len(to) != 3 {
		return ConvertResponse{}, plugin.Errorf(plugin.CodeBadInput, "currencies are 3-letter codes, got %q and %q", req.From, req.To)
	}
	now, err := plugin.Clock.Now(ctx)
	if err != nil {
		return ConvertResponse{}, fmt.Errorf("clock: %w", err)
	}
	key := "rate/" + from + "/" + to
	rate, source, fetched := 0.0, "cache", now
	if v, found, err := plugin.KV.Get(ctx, key); err != nil {
		return ConvertResponse{}, fmt.Errorf("read cache: %w", err)
	} else if found {
		var c cached
		if json.Unmarshal(v, &c) == nil && now.Sub(time.Unix(c.Fetched, 0)) < maxAge {
			rate, fetched = c.Rate, time.Unix(c.Fetched, 0)
		}
	}
	if rate == 0 {
		if rate, err = fetch(ctx, from, to); err != nil {
			return ConvertResponse{}, err
		}
		source = "api"
		b, _ := json.Marshal(cached{Rate: rate, Fetched: now.Unix()})
		if err := plugin.KV.Put(ctx, key, b); err != nil {
			return ConvertResponse{}, fmt.Errorf("write cache: %w", err)
		}
	}
	return ConvertResponse{
		AmountCents: int64(math.Round(float64(req.AmountCents) * rate)),
		Rate:        rate, Source: source, AsOf: fetched.UTC().Format(time.RFC3339),
	}, nil
}

// fetch asks the rate API (whose address the operator configures) for one
// rate. The host makes the request, and only to the host it granted.
func fetch(ctx context.Context, from, to string) (float64, error) {
	api, err := plugin.Config.Get(ctx, "api_url")
	if err != nil {
		return 0, fmt.Errorf("config api_url: %w", err)
	}
	resp, err := plugin.HTTP.Get(ctx, strings.TrimRight(api, "/")+"/rates?base="+from)
	if err != nil {
		return 0, fmt.Errorf("fetch rates: %w", err)
	}
	if resp.Status != 200 {
		return 0, fmt.Errorf("rate API answered %d", resp.Status)
	}
	var body struct {
		Rates map[string]float64 `json:"rates"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil {
		return 0, fmt.Errorf("decode rates: %w", err)
	}
	r, ok := body.Rates[to]
	if !ok || r <= 0 {
		return 0, plugin.Errorf(plugin.CodeBadInput, "the rate API has no %s→%s rate", from, to)
	}
	return r, nil
}
