// The process connector's listen request (linux/cn_proc.h): a
// NETLINK_CONNECTOR socket bound to the process events' group, then asked
// for them. The host's kqueue PROC source uses it (docs/kqueue.md), and so
// do the tests that count the machine's process events.
#pragma once

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

namespace evshim::shim {

// Binds `fd` (a NETLINK_CONNECTOR datagram socket) to CN_IDX_PROC and sends
// PROC_CN_MCAST_LISTEN; false if either fails (EPERM without
// CAP_NET_ADMIN). The caller owns `fd` and closes it on failure.
inline bool ListenToProcessEvents(int fd) {
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = CN_IDX_PROC;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  // nlmsghdr, cn_msg, then the operation.
  alignas(nlmsghdr) unsigned char msg[NLMSG_LENGTH(sizeof(cn_msg) + sizeof(uint32_t))] = {};
  auto* nh = reinterpret_cast<nlmsghdr*>(msg);
  nh->nlmsg_len = sizeof msg;
  nh->nlmsg_type = NLMSG_DONE;
  auto* cn = static_cast<cn_msg*>(NLMSG_DATA(nh));
  cn->id.idx = CN_IDX_PROC;
  cn->id.val = CN_VAL_PROC;
  cn->len = sizeof(uint32_t);
  const uint32_t op = PROC_CN_MCAST_LISTEN;
  std::memcpy(reinterpret_cast<unsigned char*>(cn) + sizeof(cn_msg), &op, sizeof op);
  return send(fd, msg, sizeof msg, 0) == static_cast<ssize_t>(sizeof msg);
}

}  // namespace evshim::shim
