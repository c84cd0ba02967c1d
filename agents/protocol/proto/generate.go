// Package agentpb holds the Go code generated from agent_v2.proto (see README).
package agentpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative agent_v2.proto
