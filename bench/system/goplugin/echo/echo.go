// Package echo is the plugin contract shared by the go-plugin comparison
// systems and their plugin programs (plugins/goplugin-grpc and
// plugins/goplugin-netrpc): one function, Echo, offered over go-plugin's two
// RPC stacks the way go-plugin's own examples offer an interface.
//
// The gRPC service is registered by hand with a ServiceDesc and uses the
// well-known wrapperspb.BytesValue message, which is exactly what protoc
// would generate for "rpc Echo(Bytes) returns (Bytes)"; no generated code is
// needed and the wire format is the same.
package echo

import (
	"context"
	"net/rpc"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// PluginName is the name both sides dispense the plugin under.
const PluginName = "echo"

// Handshake is the go-plugin handshake both sides must agree on.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  1,
		MagicCookieKey:   "AIRLOCK_BENCH_GOPLUGIN",
		MagicCookieValue: "echo",
	}
}

// Echoer is the plugin's interface.
type Echoer interface {
	Echo(ctx context.Context, payload []byte) ([]byte, error)
}

// Server is the plugin-side implementation: it returns its input.
type Server struct{}

// Echo returns payload unchanged.
func (Server) Echo(_ context.Context, payload []byte) ([]byte, error) { return payload, nil }

// ---- gRPC ------------------------------------------------------------------

const (
	grpcService = "airlockbench.Echo"
	grpcMethod  = "/airlockbench.Echo/Echo"
)

// GRPCPlugin offers Echoer over go-plugin's gRPC protocol.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl is set on the plugin side only.
	Impl Echoer
}

// GRPCServer registers the echo service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(serviceDesc(), grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns an Echoer that calls the service on conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return grpcClient{conn: conn}, nil
}

type grpcServer struct{ impl Echoer }

func (s grpcServer) Echo(ctx context.Context, payload []byte) ([]byte, error) {
	return s.impl.Echo(ctx, payload)
}

func serviceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: grpcService,
		HandlerType: (*Echoer)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Echo", Handler: echoHandler}},
	}
}

// echoHandler is the unary handler protoc-gen-go-grpc would generate.
func echoHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.BytesValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	call := func(ctx context.Context, req any) (any, error) {
		out, err := srv.(Echoer).Echo(ctx, req.(*wrapperspb.BytesValue).GetValue())
		if err != nil {
			return nil, err
		}
		return wrapperspb.Bytes(out), nil
	}
	if interceptor == nil {
		return call(ctx, in)
	}
	return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: grpcMethod}, call)
}

type grpcClient struct{ conn *grpc.ClientConn }

func (c grpcClient) Echo(ctx context.Context, payload []byte) ([]byte, error) {
	out := new(wrapperspb.BytesValue)
	if err := c.conn.Invoke(ctx, grpcMethod, wrapperspb.Bytes(payload), out); err != nil {
		return nil, err
	}
	return out.GetValue(), nil
}

// ---- net/rpc ---------------------------------------------------------------

// NetRPCPlugin offers Echoer over go-plugin's net/rpc protocol (gob over
// yamux streams).
type NetRPCPlugin struct {
	// Impl is set on the plugin side only.
	Impl Echoer
}

// Server returns the net/rpc receiver go-plugin registers as "Plugin".
func (p *NetRPCPlugin) Server(*plugin.MuxBroker) (any, error) {
	return &RPCServer{impl: p.Impl}, nil
}

// Client returns an Echoer that calls the receiver through c.
func (p *NetRPCPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) {
	return rpcClient{c: c}, nil
}

// RPCServer is the net/rpc receiver; net/rpc requires it to be exported.
type RPCServer struct{ impl Echoer }

// Echo is the net/rpc method behind Echoer.Echo.
func (s *RPCServer) Echo(payload []byte, reply *[]byte) error {
	out, err := s.impl.Echo(context.Background(), payload)
	*reply = out
	return err
}

type rpcClient struct{ c *rpc.Client }

// Echo honours ctx by abandoning the call; net/rpc has no way to cancel it.
func (c rpcClient) Echo(ctx context.Context, payload []byte) ([]byte, error) {
	var out []byte
	call := c.c.Go("Plugin.Echo", payload, &out, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		return out, call.Error
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
