package main

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Money is an amount in cents. Prices are integers so that no float
// rounding ever moves a cent.
type Money int64

// QuoteRequest asks for the price of an order.
type QuoteRequest struct {
	Items    []Item `json:"items"`
	Discount string `json:"discount,omitempty"` // a discount code
	Region   string `json:"region"`             // picks the tax rate
}

// Item is one order line.
type Item struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Quote is the priced order.
type Quote struct {
	Lines    []Line   `json:"lines"`
	Subtotal Money    `json:"subtotal_cents"`
	Discount Money    `json:"discount_cents"`
	Tax      Money    `json:"tax_cents"`
	Total    Money    `json:"total_cents"`
	Notes    []string `json:"notes,omitempty"`
}

// Line is one priced order line.
type Line struct {
	SKU       string `json:"sku"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price_cents"`
	Amount    Money  `json:"amount_cents"`
}

// Product has a list price and volume tiers: buying at least MinQty units
// lowers the unit price to Price.
type Product struct {
	Name  string
	Price Money
	Tiers []Tier
}

// Tier is a volume price.
type Tier struct {
	MinQty int
	Price  Money
}

// Catalog is the price list the plugin quotes from.
var Catalog = map[string]Product{
	"widget": {Name: "Widget", Price: 1999, Tiers: []Tier{{10, 1799}, {100, 1499}}},
	"gadget": {Name: "Gadget", Price: 4950, Tiers: []Tier{{5, 4500}}},
	"cable":  {Name: "Cable", Price: 799},
}

// Discounts are codes: a percentage off the subtotal, from a minimum order.
var Discounts = map[string]struct {
	Percent  int
	MinOrder Money
}{
	"WELCOME10": {10, 0},
	"BULK15":    {15, 50000},
}

// TaxRates are basis points per region (825 = 8.25%).
var TaxRates = map[string]int64{"us-ca": 825, "us-or": 0, "eu-de": 1900, "eu-fr": 2000}

// ErrBadRequest marks problems with the request itself.
var ErrBadRequest = errors.New("bad request")

const maxQuantity = 1_000_000

// Price quotes req. Every problem with the request is reported at once.
func Price(req QuoteRequest) (Quote, error) {
	var problems []string
	rate, ok := TaxRates[req.Region]
	if !ok {
		problems = append(problems, fmt.Sprintf("unknown region %q (known: %s)", req.Region, strings.Join(keys(TaxRates), ", ")))
	}
	if len(req.Items) == 0 {
		problems = append(problems, "the order has no items")
	}
	var q Quote
	for i, it := range req.Items {
		p, ok := Catalog[it.SKU]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("items[%d]: unknown sku %q (known: %s)", i, it.SKU, strings.Join(keys(Catalog), ", ")))
			continue
		case it.Quantity < 1 || it.Quantity > maxQuantity:
			problems = append(problems, fmt.Sprintf("items[%d]: quantity %d is outside 1..%d", i, it.Quantity, maxQuantity))
			continue
		}
		unit := p.Price
		for _, t := range p.Tiers {
			if it.Quantity >= t.MinQty {
				unit = t.Price
			}
		}
		amount := unit * Money(it.Quantity)
		q.Lines = append(q.Lines, Line{SKU: it.SKU, Quantity: it.Quantity, UnitPrice: unit, Amount: amount})
		q.Subtotal += amount
	}
	if req.Discount != "" {
		d, ok := Discounts[strings.ToUpper(req.Discount)]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("unknown discount code %q", req.Discount))
		case q.Subtotal < d.MinOrder:
			q.Notes = append(q.Notes, fmt.Sprintf("discount %s needs an order of at least %s; not applied", strings.ToUpper(req.Discount), d.MinOrder))
		default:
			q.Discount = percentOf(q.Subtotal, int64(d.Percent)*100)
		}
	}
	if len(problems) > 0 {
		return Quote{}, fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(problems, "; "))
	}
	q.Tax = percentOf(q.Subtotal-q.Discount, rate)
	q.Total = q.Subtotal - q.Discount + q.Tax
	return q, nil
}

// percentOf returns bp basis points of m, rounded half away from zero.
func percentOf(m Money, bp int64) Money {
	return Money(math.Round(float64(int64(m)*bp) / 10000))
}

func (m Money) String() string { return fmt.Sprintf("$%d.%02d", m/100, m%100) }

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
