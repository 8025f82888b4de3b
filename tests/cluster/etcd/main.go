// Command etcd runs the etcd server from go.etcd.io/etcd/server/v3 at the
// version pinned in versions.env (the upstream root module cannot be
// installed directly because of its replace directives).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
