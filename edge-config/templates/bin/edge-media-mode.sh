#!/bin/sh
# Before RTPEngine starts: its table, {{TABLE}} (in-kernel) if xt_RTPENGINE loads and its iptables rule is set,
# else -1 (userspace, logged: metric and alarm).
T={{TABLE}}
kernel() {
  [ "$T" -ge 0 ] && modprobe xt_RTPENGINE && [ -e "${RTPENGINE_PROC_CONTROL:-/proc/rtpengine/control}" ] || return 1
  iptables -N rtpengine 2>/dev/null
  iptables -C INPUT -p udp -j rtpengine 2>/dev/null || iptables -I INPUT -p udp -j rtpengine || return 1
  iptables -C rtpengine -p udp -j RTPENGINE --id "$T" 2>/dev/null || iptables -I rtpengine -p udp -j RTPENGINE --id "$T"
}
if kernel; then
  echo "edge: {{KERNEL_PHRASE}} (table $T)"
else
  [ "$T" -lt 0 ] || echo "edge: {{USERSPACE_PHRASE}}: xt_RTPENGINE unavailable"
  T=-1
fi
echo "RTPENGINE_TABLE=$T" > {{MODE_FILE}}
