// A real S3 object store for tests: a one-node Ceph cluster with a RADOS
// Gateway on loopback (scripts/ceph-gateway.ts starts the same for people).
export { startCeph, type CephGateway, type CephOptions } from '../../scripts/lib/ceph.ts'
