// Command pricing is an Airlock plugin that prices orders: volume tiers,
// discount codes and regional tax, in integer cents. Pricing rules change
// often and are owned by another team; as a plugin they ship on their own
// schedule without being trusted by the service that calls them.
package main

import (
	"context"
	"errors"

	"github.com/airlockhq/airlock/sdk/go/plugin"
)

func main() {
	p := plugin.New("pricing", "1.0.0")
	plugin.HandleJSON(p, "quote", func(ctx context.Context, req QuoteRequest) (Quote, error) {
		q, err := Price(req)
		if errors.Is(err, ErrBadRequest) {
			return Quote{}, plugin.Errorf(plugin.CodeBadInput, "%v", err)
		}
		return q, err
	})
	p.Main()
}
