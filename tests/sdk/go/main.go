// A Go client of coffer serve through grpc-go (issue 13 item 2). The Nitric Go SDK module
// (github.com/nitrictech/go-sdk) is not served by this machine's Go module proxy, so this
// program speaks both of Nitric's contracts with grpc-go directly, the way the SDK does (one
// ClientConn, unary calls, the SDK's Declare messages). The messages are built at run time with
// dynamicpb from a descriptor set that the test makes from proto/ with protoc-c: no generated
// code is committed.
//
// usage: sdkgo DESCRIPTOR_SET MODE [ARGS...]   (SERVICE_ADDRESS: host:port)
//
//	scenario v0|v1 PREFIX   the common scenario (put twice, latest, version 1, binary, UTF-8,
//	                        NotFound, PermissionDenied, InvalidArgument)
//	keepalive SECONDS       keepalive PINGs every 10 s (grpc-go's floor), also without streams,
//	                        for SECONDS; then a call: the connection must be the first one
//	restart v0|v1 NAME      a call; "ready"; waits for a line on stdin (the server restarts);
//	                        then calls until one succeeds, printing each outcome
//	burst v0|v1 NAME N      N puts started before the policy Declare is sent, then N accesses
//	sustained v0|v1 NAME SECONDS INFLIGHT   puts and accesses for SECONDS with INFLIGHT in flight
//	declare v0|v1 PREFIX N  declares N secrets (each with its policy), then one put and access
package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

var files *protoregistry.Files

// One contract generation: its package names and its numbers (see docs/sdks.md).
type contract struct {
	secretPkg, resourcePkg, secretSvc, resourceSvc string
	idField                                         string // the Declare's resource field
	typeFunction, typePolicy, typeSecret            int32  // ResourceType
	actPut, actAccess                               int32  // Action
	secretConfig                                    string // the secret config field
}

var contracts = map[string]contract{
	"v1": {"nitric.proto.secrets.v1", "nitric.proto.resources.v1", "SecretManager", "Resources",
		"id", 1, 7, 8, 400, 401, "secret"},
	"v0": {"nitric.secret.v1", "nitric.resource.v1", "SecretService", "ResourceService",
		"resource", 1, 8, 9, 500, 501, "secret"},
}

func msg(name string) *dynamicpb.Message {
	d, err := files.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		fail("descriptor %s: %v", name, err)
	}
	return dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
}

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "sdkgo: "+f+"\n", a...)
	os.Exit(1)
}

func field(m *dynamicpb.Message, name string) protoreflect.FieldDescriptor {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil {
		fail("no field %s in %s", name, m.Descriptor().FullName())
	}
	return fd
}

func sub(m *dynamicpb.Message, name string) *dynamicpb.Message {
	return m.Mutable(field(m, name)).Message().Interface().(*dynamicpb.Message)
}

func setStr(m *dynamicpb.Message, name, v string) { m.Set(field(m, name), protoreflect.ValueOfString(v)) }

func setEnum(m *dynamicpb.Message, name string, v int32) {
	m.Set(field(m, name), protoreflect.ValueOfEnum(protoreflect.EnumNumber(v)))
}

func ident(m *dynamicpb.Message, typ int32, name string) {
	setEnum(m, "type", typ)
	setStr(m, "name", name)
}

type client struct {
	c    contract
	conn *grpc.ClientConn
}

func (k *client) invoke(ctx context.Context, svc, method string, req, resp proto.Message) error {
	pkg := k.c.secretPkg
	if svc == k.c.resourceSvc {
		pkg = k.c.resourcePkg
	}
	return k.conn.Invoke(ctx, "/"+pkg+"."+svc+"/"+method, req, resp)
}

// The SDK's two Declares: the secret, then the policy granting this service the actions.
func (k *client) declareSecret(ctx context.Context, name string) error {
	req := msg(k.c.resourcePkg + ".ResourceDeclareRequest")
	ident(sub(req, k.c.idField), k.c.typeSecret, name)
	sub(req, k.c.secretConfig) // present, empty: what the v1 SDKs send
	return k.invoke(ctx, k.c.resourceSvc, "Declare", req, msg(k.c.resourcePkg+".ResourceDeclareResponse"))
}

func (k *client) declarePolicy(ctx context.Context, name string, put, access bool) error {
	req := msg(k.c.resourcePkg + ".ResourceDeclareRequest")
	ident(sub(req, k.c.idField), k.c.typePolicy, "")
	pol := sub(req, "policy")
	pr := pol.Mutable(field(pol, "principals")).List()
	p := pr.NewElement()
	ident(p.Message().Interface().(*dynamicpb.Message), k.c.typeFunction, "")
	pr.Append(p)
	acts := pol.Mutable(field(pol, "actions")).List()
	if put {
		acts.Append(protoreflect.ValueOfEnum(protoreflect.EnumNumber(k.c.actPut)))
	}
	if access {
		acts.Append(protoreflect.ValueOfEnum(protoreflect.EnumNumber(k.c.actAccess)))
	}
	rs := pol.Mutable(field(pol, "resources")).List()
	r := rs.NewElement()
	ident(r.Message().Interface().(*dynamicpb.Message), k.c.typeSecret, name)
	rs.Append(r)
	return k.invoke(ctx, k.c.resourceSvc, "Declare", req, msg(k.c.resourcePkg+".ResourceDeclareResponse"))
}

func (k *client) allow(name string, put, access bool) {
	ctx := context.Background()
	if err := k.declareSecret(ctx, name); err != nil {
		fail("declare %s: %v", name, err)
	}
	if err := k.declarePolicy(ctx, name, put, access); err != nil {
		fail("policy %s: %v", name, err)
	}
}

// put answers the new version's id.
func (k *client) put(ctx context.Context, name string, value []byte) (string, error) {
	req := msg(k.c.secretPkg + ".SecretPutRequest")
	setStr(sub(req, "secret"), "name", name)
	req.Set(field(req, "value"), protoreflect.ValueOfBytes(value))
	resp := msg(k.c.secretPkg + ".SecretPutResponse")
	if err := k.invoke(ctx, k.c.secretSvc, "Put", req, resp); err != nil {
		return "", err
	}
	sv := resp.Get(field(resp, "secret_version")).Message()
	return sv.Get(sv.Descriptor().Fields().ByName("version")).String(), nil
}

// access answers the version's id and its value.
func (k *client) access(ctx context.Context, name, version string) (string, []byte, error) {
	req := msg(k.c.secretPkg + ".SecretAccessRequest")
	sv := sub(req, "secret_version")
	setStr(sub(sv, "secret"), "name", name)
	setStr(sv, "version", version)
	resp := msg(k.c.secretPkg + ".SecretAccessResponse")
	if err := k.invoke(ctx, k.c.secretSvc, "Access", req, resp); err != nil {
		return "", nil, err
	}
	got := resp.Get(field(resp, "secret_version")).Message()
	id := got.Get(got.Descriptor().Fields().ByName("version")).String()
	return id, resp.Get(field(resp, "value")).Bytes(), nil
}

var dials atomic.Int64

// Counts the HTTP/2 PING frames on a connection: those the client sends (not ACKs) and the
// server's ACKs, by following the frame headers of each direction.
var pingsSent, pingAcks atomic.Int64

type frameCounter struct {
	skip   int    // bytes of the current frame's payload (or the preface) still to pass
	hdr    []byte // a frame header being collected
	ack    bool   // count ACK pings (reads) or non-ACK pings (writes)
	counts *atomic.Int64
}

func (f *frameCounter) feed(b []byte) {
	for len(b) > 0 {
		if f.skip > 0 {
			n := min(f.skip, len(b))
			f.skip -= n
			b = b[n:]
			continue
		}
		n := min(9-len(f.hdr), len(b))
		f.hdr = append(f.hdr, b[:n]...)
		b = b[n:]
		if len(f.hdr) == 9 {
			length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
			if f.hdr[3] == 6 && (f.hdr[4]&1 == 1) == f.ack {
				f.counts.Add(1)
			}
			f.skip = length
			f.hdr = f.hdr[:0]
		}
	}
}

type countingConn struct {
	net.Conn
	r, w frameCounter
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.r.feed(b[:n])
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.w.feed(b[:n])
	return n, err
}

func connect(c contract, opts ...grpc.DialOption) *client {
	addr := os.Getenv("SERVICE_ADDRESS")
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	dialer := func(ctx context.Context, a string) (net.Conn, error) {
		dials.Add(1)
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: nc, r: frameCounter{ack: true, counts: &pingAcks},
			w: frameCounter{skip: 24, counts: &pingsSent}}, nil
	}
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(dialer))
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		fail("connect %s: %v", addr, err)
	}
	return &client{c, conn}
}

func code(err error) string {
	if err == nil {
		return "OK"
	}
	return status.Code(err).String()
}

func must[T any](v T, err error) T {
	if err != nil {
		fail("%v", err)
	}
	return v
}

func scenario(k *client, prefix string) {
	ctx := context.Background()
	key, blob, ro := prefix, prefix+"-bin", prefix+"-ro"
	k.allow(key, true, true)
	k.allow(blob, true, true)
	k.allow(ro, false, true)
	v1 := must(k.put(ctx, key, []byte("a new secret value")))
	v2 := must(k.put(ctx, key, []byte("the second value")))
	fmt.Printf("versions %s %s\n", v1, v2)
	id, val, err := k.access(ctx, key, "latest")
	must(0, err)
	fmt.Printf("latest %s %s\n", id, val)
	_, val, err = k.access(ctx, key, v1)
	must(0, err)
	fmt.Printf("first %s\n", val)
	bv := must(k.put(ctx, blob, []byte("\x00\xff\x00A\x00")))
	_, val, err = k.access(ctx, blob, bv)
	must(0, err)
	fmt.Printf("binary %s\n", hex.EncodeToString(val))
	uv := must(k.put(ctx, key, []byte("grüße ✓ 秘密")))
	_, val, err = k.access(ctx, key, uv)
	must(0, err)
	fmt.Printf("utf8 %s\n", val)
	_, _, err = k.access(ctx, key, "999")
	fmt.Printf("missing %s\n", code(err))
	_, err = k.put(ctx, ro, []byte("nope"))
	fmt.Printf("put on access-only %s\n", code(err))
	_, err = k.put(ctx, key, []byte(strings.Repeat("x", 70000)))
	fmt.Printf("too big %s\n", code(err))
}

func keepaliveRun(seconds int) {
	k := connect(contracts["v1"], grpc.WithKeepaliveParams(keepalive.ClientParameters{
		Time: 10 * time.Second, Timeout: 2 * time.Second, PermitWithoutStream: true}))
	ctx := context.Background()
	k.allow("keepalive-go", true, true)
	must(k.put(ctx, "keepalive-go", []byte("before")))
	before := pingsSent.Load()
	time.Sleep(time.Duration(seconds) * time.Second)
	idle, acked := pingsSent.Load()-before, pingAcks.Load()
	_, val, err := k.access(ctx, "keepalive-go", "latest")
	fmt.Printf("after %d s idle: %s %s, connections made %d, idle pings %d, pings acked %d of %d\n",
		seconds, code(err), val, dials.Load(), idle, acked, before+idle)
}

func restart(k *client, name string) {
	ctx := context.Background()
	k.allow(name, true, true)
	must(k.put(ctx, name, []byte("before the restart")))
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	var outcomes []string
	for i := 0; i < 100; i++ {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := k.put(c, name, []byte("after the restart"))
		cancel()
		outcomes = append(outcomes, code(err))
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, val, err := k.access(ctx, name, "latest")
	fmt.Printf("outcomes %s\nthen %s %s\n", strings.Join(outcomes, " "), code(err), val)
}

func count(m map[string]int) string {
	var parts []string
	for c, n := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", c, n))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func burst(k *client, name string, n int) {
	ctx := context.Background()
	if err := k.declareSecret(ctx, name); err != nil {
		fail("declare: %v", err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := map[string]int{}
	run := func(f func() error) {
		defer wg.Done()
		if err := f(); err != nil {
			mu.Lock()
			failed[code(err)]++
			mu.Unlock()
		}
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go run(func() error { _, err := k.put(ctx, name, []byte("burst")); return err })
	}
	// The policy goes out behind the data calls, as a program serving traffic at start-up does.
	if err := k.declarePolicy(ctx, name, true, true); err != nil {
		fail("policy: %v", err)
	}
	wg.Wait()
	fmt.Printf("burst put failed %s\n", count(failed))
	failed = map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go run(func() error { _, _, err := k.access(ctx, name, "latest"); return err })
	}
	wg.Wait()
	fmt.Printf("burst access failed %s\n", count(failed))
}

func sustained(k *client, name string, seconds, inflight int) {
	ctx := context.Background()
	k.allow(name, true, true)
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	var ops atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := map[string]int{}
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				var err error
				if i%2 == 0 {
					_, err = k.put(ctx, name, []byte(fmt.Sprintf("w%d-%d", w, i)))
				} else {
					_, _, err = k.access(ctx, name, "latest")
				}
				ops.Add(1)
				if err != nil {
					mu.Lock()
					failed[code(err)]++
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	fmt.Printf("sustained %d in flight: calls %d failed %s\n", inflight, ops.Load(), count(failed))
}

func declareMany(k *client, prefix string, n int) {
	for i := 0; i < n; i++ {
		k.allow(fmt.Sprintf("%s-%d", prefix, i), true, true)
	}
	ctx := context.Background()
	last := fmt.Sprintf("%s-%d", prefix, n-1)
	must(k.put(ctx, last, []byte("last")))
	_, val, err := k.access(ctx, last, "latest")
	must(0, err)
	fmt.Printf("declared %d %s\n", n, val)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("not a number: %s", s)
	}
	return n
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: sdkgo DESCRIPTOR_SET MODE [ARGS...]")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail("%v", err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		fail("descriptor set: %v", err)
	}
	if files, err = protodesc.NewFiles(&set); err != nil {
		fail("descriptor set: %v", err)
	}
	a := os.Args[2:]
	if a[0] == "keepalive" {
		keepaliveRun(atoi(a[1]))
		return
	}
	c, ok := contracts[a[1]]
	if !ok || len(a) < 3 {
		fail("bad arguments: %v", a)
	}
	k := connect(c)
	switch a[0] {
	case "scenario":
		scenario(k, a[2])
	case "restart":
		restart(k, a[2])
	case "burst":
		burst(k, a[2], atoi(a[3]))
	case "sustained":
		sustained(k, a[2], atoi(a[3]), atoi(a[4]))
	case "declare":
		declareMany(k, a[2], atoi(a[3]))
	default:
		fail("unknown mode %s", a[0])
	}
}
