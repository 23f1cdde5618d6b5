// Command etcd is the etcd server, built from the version k8s.io/kubernetes
// pins so the local control plane runs the pair Kubernetes was released with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
