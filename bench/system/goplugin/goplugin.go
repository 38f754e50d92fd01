// Package goplugin hosts the comparison systems: hashicorp/go-plugin with its
// gRPC protocol and with its net/rpc protocol, each loading an echo plugin
// written the way go-plugin's documentation shows (package echo).
//
// go-plugin is used as its users use it: NewClient with an exec.Cmd, Client,
// Dispense, and Kill to stop. Its log output is discarded so that logging is
// not part of what is measured.
package goplugin

import (
	"context"
	"fmt"
	"io"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/airlockhq/airlock/bench/system"
	"github.com/airlockhq/airlock/bench/system/goplugin/echo"
)

// Specs returns the go-plugin gRPC and net/rpc systems.
func Specs() []system.Spec {
	return []system.Spec{
		{Name: system.GoPluginGRPC, Role: system.RoleComparison, Concurrent: true, New: newGRPC},
		{Name: system.GoPluginNetRPC, Role: system.RoleComparison, Concurrent: true, New: newNetRPC},
	}
}

type host struct {
	bin     string
	proto   plugin.Protocol
	plugins plugin.PluginSet
}

func newGRPC(ctx context.Context, env *system.Env) (system.System, error) {
	bin, err := env.GoBuild(ctx, env.ModuleDir(), "./plugins/goplugin-grpc")
	if err != nil {
		return nil, err
	}
	return &host{
		bin:     bin,
		proto:   plugin.ProtocolGRPC,
		plugins: plugin.PluginSet{echo.PluginName: &echo.GRPCPlugin{}},
	}, nil
}

func newNetRPC(ctx context.Context, env *system.Env) (system.System, error) {
	bin, err := env.GoBuild(ctx, env.ModuleDir(), "./plugins/goplugin-netrpc")
	if err != nil {
		return nil, err
	}
	return &host{
		bin:     bin,
		proto:   plugin.ProtocolNetRPC,
		plugins: plugin.PluginSet{echo.PluginName: &echo.NetRPCPlugin{}},
	}, nil
}

// Load starts the plugin through go-plugin. go-plugin's start takes no
// context (its timeout is ClientConfig.StartTimeout, one minute by default).
func (h *host) Load(context.Context) (system.Plugin, error) {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  echo.Handshake(),
		Plugins:          h.plugins,
		Cmd:              exec.Command(h.bin),
		AllowedProtocols: []plugin.Protocol{h.proto},
		Logger:           hclog.NewNullLogger(),
		SyncStdout:       io.Discard,
		SyncStderr:       io.Discard,
	})
	rpcClient, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start go-plugin %s: %w", h.bin, err)
	}
	raw, err := rpcClient.Dispense(echo.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("dispense go-plugin echo: %w", err)
	}
	echoer, ok := raw.(echo.Echoer)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("go-plugin dispensed %T, not an echo.Echoer", raw)
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	return &goPlugin{client: client, echo: echoer, pid: pid}, nil
}

func (h *host) Close(context.Context) error { return nil }

type goPlugin struct {
	client *plugin.Client
	echo   echo.Echoer
	pid    int
}

func (p *goPlugin) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return p.echo.Echo(ctx, payload)
}

func (p *goPlugin) PID() int { return p.pid }

// Close is go-plugin's Kill: a graceful close over RPC, then a forced kill
// after go-plugin's fixed two-second grace. It takes no context.
func (p *goPlugin) Close(context.Context) error {
	p.client.Kill()
	return nil
}
