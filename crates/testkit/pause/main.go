// Command pause is the sandbox ("pause") container of the test node's pods
// (crates/testkit/src/node.rs): it holds the pod's namespaces and waits for
// SIGTERM or SIGINT, as upstream's pause does. No registry is reachable here,
// so the test suite builds this image instead of pulling registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM)
	<-c
}
