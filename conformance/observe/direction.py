"""Which side of a conversation began it, when the capture missed its opening.

UDP (`udp_response_first`): a flow whose first packet is a response of a known protocol
(a DNS-format message with QR=1, an NTP server reply, a STUN response, an HTTP-over-UDP
status line, a BOOTP/DHCP reply) was asked for by the other side, which is its initiator.

TCP:

Order of evidence (controls.md, decision 1): the port each side uses; then, when the
ports do not tell, pcapng/Linux-cooked direction flags; then the lower port.

- A well-known port (< 1024) is a service; so is a registered service port that UC
  deployments use (SIP, proxies, databases, remote desktop, ...). Ports at or above
  EPHEMERAL_MIN are client ports on every common OS (Linux 32768-60999, Windows and
  macOS 49152-65535). The side on the more service-like port is the responder.
- If both ports rank alike and the capture marks packets as outbound from the
  capturing host on exactly one side, that side (the capturing host, usually the
  target) is taken as the initiator. This fails closed for egress checks: a flow the
  target may have opened is judged as opened by it.
- Otherwise the lower port is the responder.
"""

from __future__ import annotations

from conformance.observe.records import PayloadKind

# Lowest ephemeral port of the common stacks (Linux default ip_local_port_range).
EPHEMERAL_MIN = 32768
WELL_KNOWN_MAX = 1023

# Registered ports that are services in UC and Windows/Linux server estates.
SERVICE_PORTS = frozenset(
    {
        1433,  # Microsoft SQL Server
        1521,  # Oracle
        1720,  # H.323
        1883,  # MQTT
        2000,  # Cisco SCCP
        2049,  # NFS
        2443,  # Cisco secure SCCP
        3128,  # HTTP proxy (Squid)
        3268,  # AD global catalog
        3269,  # AD global catalog over TLS
        3306,  # MySQL
        3389,  # RDP
        5060,  # SIP
        5061,  # SIP over TLS
        5222,  # XMPP client
        5223,  # XMPP over TLS
        5269,  # XMPP server
        5432,  # PostgreSQL
        5671,  # AMQP over TLS
        5672,  # AMQP
        5985,  # WinRM
        5986,  # WinRM over TLS
        6379,  # Redis
        6443,  # Kubernetes API
        7443,  # alternative HTTPS
        8000,  # alternative HTTP
        8008,  # alternative HTTP
        8080,  # HTTP proxy / alternative HTTP
        8081,  # alternative HTTP
        8443,  # alternative HTTPS (CUCM AXL, Imagicle admin)
        8444,  # alternative HTTPS
        8888,  # alternative HTTP
        9000,  # alternative HTTP
        9090,  # alternative HTTP
        9443,  # alternative HTTPS
        27017,  # MongoDB
    }
)

_RANK_WELL_KNOWN = 0
_RANK_SERVICE = 1
_RANK_REGISTERED = 2
_RANK_EPHEMERAL = 3


def port_rank(port: int) -> int:
    """How service-like a port is: 0 well-known, 1 known service, 2 other, 3 ephemeral."""
    if 0 < port <= WELL_KNOWN_MAX:
        return _RANK_WELL_KNOWN
    if port in SERVICE_PORTS:
        return _RANK_SERVICE
    if port >= EPHEMERAL_MIN:
        return _RANK_EPHEMERAL
    return _RANK_REGISTERED


def responder_by_rank(port_a: int, port_b: int) -> int | None:
    """0 if port_a is the service side, 1 if port_b is, None if they rank alike."""
    rank_a, rank_b = port_rank(port_a), port_rank(port_b)
    if rank_a == rank_b:
        return None
    return 0 if rank_a < rank_b else 1


def responder_by_number(port_a: int, port_b: int) -> int | None:
    """The last resort: the lower port is the service side; None if equal."""
    if port_a == port_b:
        return None
    return 0 if port_a < port_b else 1


NTP_PORT = 123
NTP_HEADER = 48  # RFC 5905 §7.3: the fixed header every NTP packet has
NTP_SERVER_MODE = 4  # RFC 5905 §7.3 mode 4: server (a reply to a client's mode 3)
STUN_HEADER = 20
STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"  # RFC 8489 §5
STUN_CLASS_MASK = 0x0110  # the class bits C1 C0 of the message type (RFC 8489 §5)
STUN_REQUEST_CLASSES = (0x0000, 0x0010)  # request, indication: the rest are responses
DNS_HEADER = 12  # RFC 1035 §4.1.1
DNS_QR = 0x80  # in the third byte: the message is a response
NBNS_PORT = 137  # RFC 1002: DNS-format header
BOOTP_SERVER_PORT = 67
BOOTP_CLIENT_PORT = 68
BOOTP_REPLY = 2  # RFC 951 op: BOOTREPLY


def udp_response_first(sport: int, dport: int, kind: PayloadKind, head: bytes) -> bool:
    """Whether a UDP payload from sport to dport is a response of a protocol we know.

    `kind` is the payload's classification and `head` its first bytes. Only shapes whose
    request and response differ in a fixed header field count; anything else says nothing.
    """
    if (kind is PayloadKind.DNS or NBNS_PORT in (sport, dport)) and len(head) >= DNS_HEADER:
        return bool(head[2] & DNS_QR)
    if head.startswith(b"HTTP/1."):  # SSDP and other HTTP-over-UDP: a status line answers
        return True
    if NTP_PORT in (sport, dport) and len(head) >= NTP_HEADER:
        version = (head[0] >> 3) & 0x07
        return 1 <= version <= 4 and head[0] & 0x07 == NTP_SERVER_MODE
    if len(head) >= STUN_HEADER and head[4:8] == STUN_MAGIC_COOKIE and head[0] & 0xC0 == 0:
        message_type = (head[0] << 8) | head[1]
        return message_type & STUN_CLASS_MASK not in STUN_REQUEST_CLASSES
    if (sport, dport) == (BOOTP_SERVER_PORT, BOOTP_CLIENT_PORT) and head:
        return head[0] == BOOTP_REPLY
    return False
