// Command cnitool is a small test driver in the spirit of upstream cnitool,
// built against the system libcni. It runs CNI network configuration lists
// (or single .conf files, up-converted by libcni) against a network namespace.
//
// Usage:
//
//	cnitool [--cache-dir DIR] add|check|del NETNAME NETNS_PATH
//	cnitool [--cache-dir DIR] validate NETNAME
//	cnitool [--cache-dir DIR] version PLUGIN_TYPE
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const (
	envCNIPath     = "CNI_PATH"
	envNetDir      = "NETCONFPATH"
	envCapArgs     = "CAP_ARGS"
	envCNIArgs     = "CNI_ARGS"
	envIfName      = "CNI_IFNAME"
	envContainerID = "CNI_CONTAINERID"
	envCacheDir    = "CNI_CACHE_DIR"

	defaultNetDir = "/etc/cni/net.d"
	defaultIfName = "eth0"
)

const usageText = `Usage:
  cnitool [--cache-dir DIR] add|check|del NETNAME NETNS_PATH
  cnitool [--cache-dir DIR] validate NETNAME
  cnitool [--cache-dir DIR] version PLUGIN_TYPE

Environment:
  NETCONFPATH      directory with network configs (default /etc/cni/net.d)
  CNI_PATH         colon-separated plugin search path
  CNI_IFNAME       interface name inside the netns (default eth0)
  CNI_ARGS         extra plugin args, "K=V;K=V"
  CAP_ARGS         capability args, a JSON object
  CNI_CONTAINERID  container ID (default "cni-" + 16 hex of sha512(netns))
  CNI_CACHE_DIR    libcni cache dir (default /var/lib/cni); --cache-dir wins
`

func usage() {
	fmt.Fprint(os.Stderr, usageText)
	os.Exit(2)
}

// fail prints err to stderr and exits 1. A *types.Error anywhere in the
// chain is reported with its CNI error code so tests can assert it.
func fail(err error) {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		msg := fmt.Sprintf("error: code %d: %s", cniErr.Code, cniErr.Msg)
		if cniErr.Details != "" {
			msg += " (" + cniErr.Details + ")"
		}
		fmt.Fprintln(os.Stderr, msg)
		if full := err.Error(); full != cniErr.Error() {
			fmt.Fprintln(os.Stderr, "context:", full)
		}
	} else {
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(1)
}

// parseArgs turns "K=V;K=V" into libcni's [][2]string.
func parseArgs(s string) ([][2]string, error) {
	var result [][2]string
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		kv := strings.SplitN(pair, "=", 2)
		if len(kv) != 2 || kv[0] == "" {
			return nil, fmt.Errorf("invalid %s pair %q", envCNIArgs, pair)
		}
		result = append(result, [2]string{kv[0], kv[1]})
	}
	return result, nil
}

func loadList(name string) (*libcni.NetworkConfigList, error) {
	dir := os.Getenv(envNetDir)
	if dir == "" {
		dir = defaultNetDir
	}
	// LoadConfList itself falls back to LoadConf + ConfListFromConf for a
	// single .conf/.json file of that name, exactly as upstream cnitool relies on.
	return libcni.LoadConfList(dir, name)
}

func runtimeConf(netns string) (*libcni.RuntimeConf, error) {
	abs, err := filepath.Abs(netns)
	if err != nil {
		return nil, err
	}
	rt := &libcni.RuntimeConf{
		ContainerID: os.Getenv(envContainerID),
		NetNS:       abs,
		IfName:      os.Getenv(envIfName),
	}
	if rt.ContainerID == "" {
		sum := sha512.Sum512([]byte(abs))
		rt.ContainerID = fmt.Sprintf("cni-%x", sum[:8])
	}
	if rt.IfName == "" {
		rt.IfName = defaultIfName
	}
	if s := os.Getenv(envCNIArgs); s != "" {
		if rt.Args, err = parseArgs(s); err != nil {
			return nil, err
		}
	}
	if s := os.Getenv(envCapArgs); s != "" {
		if err := json.Unmarshal([]byte(s), &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("invalid %s: %w", envCapArgs, err)
		}
	}
	return rt, nil
}

func main() {
	args := os.Args[1:]
	cacheDir := os.Getenv(envCacheDir)
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		switch {
		case args[0] == "--cache-dir" && len(args) > 1:
			cacheDir, args = args[1], args[2:]
		case strings.HasPrefix(args[0], "--cache-dir="):
			cacheDir, args = strings.TrimPrefix(args[0], "--cache-dir="), args[1:]
		default:
			usage()
		}
	}
	if len(args) < 2 {
		usage()
	}
	verb, name := args[0], args[1]

	cninet := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv(envCNIPath)), cacheDir, nil)
	ctx := context.Background()

	switch verb {
	case "version":
		if len(args) != 2 {
			usage()
		}
		info, err := cninet.GetVersionInfo(ctx, name)
		if err != nil {
			fail(err)
		}
		if err := info.Encode(os.Stdout); err != nil {
			fail(err)
		}
		return
	case "validate":
		if len(args) != 2 {
			usage()
		}
		list, err := loadList(name)
		if err != nil {
			fail(err)
		}
		caps, err := cninet.ValidateNetworkList(ctx, list)
		if err != nil {
			fail(err)
		}
		sort.Strings(caps)
		out, _ := json.Marshal(map[string]interface{}{
			"ok": true, "name": list.Name, "cniVersion": list.CNIVersion, "capabilities": caps,
		})
		fmt.Println(string(out))
		return
	case "add", "check", "del":
		if len(args) != 3 {
			usage()
		}
	default:
		usage()
	}

	list, err := loadList(name)
	if err != nil {
		fail(err)
	}
	rt, err := runtimeConf(args[2])
	if err != nil {
		fail(err)
	}
	switch verb {
	case "add":
		result, err := cninet.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		// Print() writes indented JSON without a trailing newline.
		if err := result.Print(); err != nil {
			fail(err)
		}
		fmt.Println()
	case "check":
		err = cninet.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cninet.DelNetworkList(ctx, list, rt)
	}
	if err != nil {
		fail(err)
	}
}
