//go:build tools

// Package tools pins KWOK and the Gateway API module (for its CRD YAML).
package tools

import (
	_ "sigs.k8s.io/gateway-api/apis/v1"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
