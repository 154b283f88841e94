// The common SDK scenario with the Go SDK (github.com/nitrictech/go-sdk v1.1.x, grpc-go) against
// coffer serve. Built by tests/sdk/test_go.mjs with the Go toolchain, everything under the build
// folder. Prints one line per step; an error line carries the SDK's error text.
package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/nitrictech/go-sdk/nitric"
	"github.com/nitrictech/go-sdk/nitric/secrets"
)

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return strings.SplitN(err.Error(), "\n", 2)[0]
}

func main() {
	ctx := context.Background()
	apiKey := nitric.NewSecret("api-key-go").Allow(secrets.SecretAccess, secrets.SecretPut)
	blob := nitric.NewSecret("blob-go").Allow(secrets.SecretAccess, secrets.SecretPut)
	readOnly := nitric.NewSecret("read-only-go").Allow(secrets.SecretAccess)

	first, err := apiKey.Put(ctx, []byte("a new secret value"))
	if err != nil {
		panic(err)
	}
	second, err := apiKey.Put(ctx, []byte("the second value"))
	if err != nil {
		panic(err)
	}
	fmt.Printf("versions %s %s\n", first, second)
	latest, err := apiKey.Access(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("latest %s\n", latest.AsString())
	v1, err := apiKey.AccessVersion(ctx, first)
	if err != nil {
		panic(err)
	}
	fmt.Printf("first %s\n", v1.AsString())
	bv, err := blob.Put(ctx, []byte{0, 255, 0, 'A', 0})
	if err != nil {
		panic(err)
	}
	b, err := blob.AccessVersion(ctx, bv)
	if err != nil {
		panic(err)
	}
	fmt.Printf("binary %s\n", hex.EncodeToString(b))
	uv, err := apiKey.Put(ctx, []byte("grüße ✓ 秘密"))
	if err != nil {
		panic(err)
	}
	u, err := apiKey.AccessVersion(ctx, uv)
	if err != nil {
		panic(err)
	}
	fmt.Printf("utf8 %s\n", u.AsString())
	_, err = apiKey.AccessVersion(ctx, "999")
	fmt.Printf("missing %s\n", errText(err))
	_, err = readOnly.Put(ctx, []byte("nope"))
	fmt.Printf("put on access-only %s\n", errText(err))
	_, err = apiKey.Put(ctx, []byte(strings.Repeat("x", 70000)))
	fmt.Printf("too big %s\n", errText(err))
}
