// Command k8s is a multi-call binary (like hyperkube or k3s) holding real
// Kubernetes v1.34.4 components and etcd, for kaddons' test suite only.
//
// It dispatches on the basename of argv[0] (kube-apiserver -> k8s symlink),
// or, when that is "k8s", on the first argument:
//
//	k8s kube-apiserver --secure-port=... [flags]
//
// Each component is started exactly the way its upstream main does.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // for timeZone support in CronJob (as upstream's mains)

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric registration
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

const self = "k8s"

var commands = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler":          func() *cobra.Command { return scheduler.NewSchedulerCommand() },
	"kubelet":                 func() *cobra.Command { return kubelet.NewKubeletCommand(context.Background()) },
	"kube-proxy":              proxy.NewProxyCommand,
}

func names() string {
	all := []string{"etcd"}
	for name := range commands {
		all = append(all, name)
	}
	sort.Strings(all)
	return strings.Join(all, ", ")
}

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	if name == self {
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprintf(os.Stderr, "usage: %s COMPONENT [flags]\n       (or call it through a symlink named COMPONENT)\ncomponents: %s\n", self, names())
			if len(args) == 0 {
				os.Exit(2)
			}
			os.Exit(0)
		}
		name, args = args[0], args[1:]
	}

	if name == "etcd" {
		// etcdmain.Main reads its flags from args[1:], like os.Args.
		etcdmain.Main(append([]string{name}, args...))
		return
	}

	newCommand, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown component %q; components: %s\n", self, name, names())
		os.Exit(2)
	}
	command := newCommand()
	command.SetArgs(args)
	os.Exit(cli.Run(command))
}
