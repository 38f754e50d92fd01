package main

import (
	"errors"
	"strings"
	"testing"
)

func TestPrice(t *testing.T) {
	tests := []struct {
		name string
		req  QuoteRequest
		want Quote
	}{
		{"list price with tax", QuoteRequest{Items: []Item{{"cable", 2}}, Region: "us-ca"},
			Quote{Subtotal: 1598, Tax: 132, Total: 1730}},
		{"volume tier", QuoteRequest{Items: []Item{{"widget", 100}}, Region: "us-or"},
			Quote{Subtotal: 149900, Total: 149900}},
		{"discount then tax", QuoteRequest{Items: []Item{{"gadget", 5}}, Discount: "welcome10", Region: "eu-de"},
			Quote{Subtotal: 22500, Discount: 2250, Tax: 3848, Total: 24098}},
		{"discount below its minimum is noted, not applied", QuoteRequest{Items: []Item{{"cable", 1}}, Discount: "BULK15", Region: "us-or"},
			Quote{Subtotal: 799, Total: 799, Notes: []string{"discount BULK15 needs an order of at least $500.00; not applied"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Price(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subtotal != tc.want.Subtotal || got.Discount != tc.want.Discount || got.Tax != tc.want.Tax ||
				got.Total != tc.want.Total || strings.Join(got.Notes, "|") != strings.Join(tc.want.Notes, "|") {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPrice_ReportsEveryProblem(t *testing.T) {
	_, err := Price(QuoteRequest{Items: []Item{{"nope", 1}, {"cable", 0}}, Discount: "FREE", Region: "mars"})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{`unknown region "mars"`, `items[0]: unknown sku "nope"`, "items[1]: quantity 0", `unknown discount code "FREE"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not mention %q", err, want)
		}
	}
}
