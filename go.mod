module github.com/airlockhq/airlock

go 1.26.8

require (
	github.com/pelletier/go-toml/v2 v2.4.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sys v0.50.0
	golang.org/x/time v0.16.0
)

require github.com/stretchr/testify v1.11.1 // indirect
