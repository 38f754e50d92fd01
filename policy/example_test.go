package policy_test

import (
	"fmt"

	"github.com/airlockhq/airlock/manifest"
	"github.com/airlockhq/airlock/policy"
)

func ExampleDecide() {
	p, err := policy.Parse([]byte(`
[plugins.weather.capabilities.http]
hosts = ["api.weather.example"]

[plugins.weather.capabilities.kv]
quota = "10MiB"
`))
	if err != nil {
		panic(err)
	}
	d := policy.Decide(p, "weather", map[string]manifest.CapabilityRequest{
		"http":     {Hosts: []string{"api.weather.example", "evil.com"}},
		"kv":       {Quota: 20 * policy.MiB},
		"fs.write": {Paths: []string{"out"}},
	})
	for _, it := range d.Items {
		fmt.Println(it.Capability, it.Outcome)
		for _, r := range it.Reasons {
			fmt.Println("  ", r)
		}
	}
	// Output:
	// fs.write denied
	//    fs.write: no policy rule grants "fs.write" to plugin "weather"; add a [plugins.weather.capabilities."fs.write"] table (or [plugins."*".capabilities."fs.write"] for every plugin) to the policy
	// http narrowed
	//    http: host "evil.com" not in policy allowlist for plugin "weather"
	// kv narrowed
	//    kv: quota 20MiB exceeds the policy cap 10MiB for plugin "weather"; granted 10MiB
	// log granted
}
