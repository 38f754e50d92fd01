module github.com/airlockhq/airlock

go 1.26.8

require (
	github.com/elastic/go-seccomp-bpf v1.6.0
	github.com/pelletier/go-toml/v2 v2.4.3
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
	golang.org/x/time v0.16.0
)
