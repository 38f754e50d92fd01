// Command goplugin-grpc is the echo plugin of the go-plugin gRPC comparison
// system, written the way go-plugin's documentation shows.
package main

import (
	"github.com/hashicorp/go-plugin"

	"github.com/airlockhq/airlock/bench/system/goplugin/echo"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: echo.Handshake(),
		Plugins:         plugin.PluginSet{echo.PluginName: &echo.GRPCPlugin{Impl: echo.Server{}}},
		GRPCServer:      plugin.DefaultGRPCServer,
	})
}
