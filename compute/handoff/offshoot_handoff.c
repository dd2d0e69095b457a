/*
 * offshoot_handoff: lets a backend take over its client's TCP socket from
 * the offshoot proxy once authentication has succeeded, so that the session
 * runs client <-> PostgreSQL directly instead of through a relay.
 *
 * Loaded with shared_preload_libraries by offshoot's compute supervisor. It
 * acts only on a session that arrived on the Unix socket and whose startup
 * packet carried `offshoot.handoff=on` (the proxy adds it for plain-TCP
 * clients). Then, in ClientAuthentication_hook, after the password was
 * checked and before PostgreSQL sends AuthenticationOk:
 *
 *   1. the backend sends, raw on its socket, the handoff request
 *      'O' int32(12) int32(pid) int32(cancel key);
 *   2. the proxy answers one byte: 'Y' carrying the client's socket as
 *      SCM_RIGHTS, or 'N' (stay on the relay);
 *   3. on 'Y' the client socket replaces the Unix socket under the same
 *      descriptor number (the Unix socket is kept open, never read, so that
 *      the proxy learns of the session's end when the backend exits), the
 *      wait set PostgreSQL sleeps on is rebuilt for it, and the session's
 *      addresses become the client's (pg_stat_activity.client_addr).
 *
 * Everything PostgreSQL had buffered (the SASL final message) and sends from
 * then on goes straight to the client. The proxy reads nothing from the
 * client after the message that completed authentication, so every byte the
 * client sends next is still in the TCP socket. See docs/proxy.md.
 */
#include "postgres.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fmgr.h"
#include "libpq/auth.h"
#include "libpq/libpq.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 180000
#error "offshoot_handoff supports PostgreSQL 15 to 17"
#endif

PG_MODULE_MAGIC;

#define HANDOFF_OPTION "offshoot.handoff"
#define HANDOFF_REQUEST 'O'
#define ANSWER_TAKE 'Y'
#define ANSWER_DECLINE 'N'
/* How long the backend waits for the proxy's answer. */
#define ANSWER_TIMEOUT_MS 10000

void		_PG_init(void);

static ClientAuthentication_hook_type previous_hook = NULL;
/* Only so that the startup option names a known setting. */
static bool handoff_option = false;

static bool
handoff_asked(Port *port)
{
	List	   *options = port->guc_options;
	int			i;

	for (i = 0; i + 1 < list_length(options); i += 2)
	{
		const char *name = list_nth(options, i);
		const char *value = list_nth(options, i + 1);
		bool		on;

		if (strcmp(name, HANDOFF_OPTION) == 0)
			return parse_bool(value, &on) && on;
	}
	return false;
}

/* Bytes the client sent that PostgreSQL has not read yet. */
static bool
unread_input(pgsocket sock)
{
	int			queued = 0;

	if (pq_buffer_has_data())
		return true;
	return ioctl(sock, FIONREAD, &queued) != 0 || queued > 0;
}

static void
put_be32(char *at, uint32 value)
{
	at[0] = (char) (value >> 24);
	at[1] = (char) (value >> 16);
	at[2] = (char) (value >> 8);
	at[3] = (char) value;
}

/* Waits for `events` on the (non-blocking) socket; false on timeout. */
static bool
wait_socket(pgsocket sock, short events, int timeout_ms)
{
	struct pollfd pfd;
	int			rc;

	pfd.fd = sock;
	pfd.events = events;
	pfd.revents = 0;
	for (;;)
	{
		rc = poll(&pfd, 1, timeout_ms);
		if (rc >= 0)
			return rc > 0;
		if (errno != EINTR)
			ereport(FATAL,
					(errcode_for_socket_access(),
					 errmsg("offshoot handoff: poll failed: %m")));
		CHECK_FOR_INTERRUPTS();
	}
}

static void
send_request(pgsocket sock)
{
	char		msg[13];
	size_t		sent = 0;

	msg[0] = HANDOFF_REQUEST;
	put_be32(msg + 1, 12);
	put_be32(msg + 5, (uint32) MyProcPid);
	put_be32(msg + 9, (uint32) MyCancelKey);
	while (sent < sizeof(msg))
	{
		ssize_t		n = send(sock, msg + sent, sizeof(msg) - sent, MSG_NOSIGNAL);

		if (n > 0)
		{
			sent += n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		{
			if (!wait_socket(sock, POLLOUT, ANSWER_TIMEOUT_MS))
				ereport(FATAL,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("offshoot handoff: the proxy does not read")));
			continue;
		}
		ereport(FATAL,
				(errcode_for_socket_access(),
				 errmsg("offshoot handoff: could not send the request: %m")));
	}
}

/*
 * Reads the proxy's one-byte answer. Returns the client socket on 'Y', -1 on
 * 'N'; anything else ends the session.
 */
static int
receive_answer(pgsocket sock)
{
	char		answer;
	struct iovec iov;
	struct msghdr msg;
	union
	{
		struct cmsghdr align;
		char		buf[CMSG_SPACE(sizeof(int))];
	}			control;
	struct cmsghdr *cmsg;
	int			fd = -1;
	ssize_t		n;

	for (;;)
	{
		iov.iov_base = &answer;
		iov.iov_len = 1;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = control.buf;
		msg.msg_controllen = sizeof(control.buf);
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
		if (n > 0)
			break;
		if (n == 0)
			ereport(FATAL,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("offshoot handoff: the proxy closed the connection")));
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			ereport(FATAL,
					(errcode_for_socket_access(),
					 errmsg("offshoot handoff: could not read the answer: %m")));
		if (!wait_socket(sock, POLLIN, ANSWER_TIMEOUT_MS))
			ereport(FATAL,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("offshoot handoff: no answer from the proxy within %d ms",
							ANSWER_TIMEOUT_MS)));
	}
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg))
	{
		if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
			cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	}
	if (answer == ANSWER_DECLINE && fd < 0)
		return -1;
	if (answer == ANSWER_TAKE && fd >= 0 && (msg.msg_flags & MSG_CTRUNC) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	ereport(FATAL,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("offshoot handoff: unexpected answer from the proxy")));
	return -1;					/* not reached */
}

/* The received descriptor must be a connected TCP stream socket. */
static bool
is_tcp_stream(int fd)
{
	int			type = 0;
	socklen_t	len = sizeof(type);
	struct sockaddr_storage addr;
	socklen_t	addr_len = sizeof(addr);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
		return false;
	if (getpeername(fd, (struct sockaddr *) &addr, &addr_len) != 0)
		return false;
	return addr.ss_family == AF_INET || addr.ss_family == AF_INET6;
}

/* What pq_init builds, for the socket now under port->sock. */
static void
rebuild_wait_set(Port *port)
{
	FreeWaitEventSet(FeBeWaitSet);
#if PG_VERSION_NUM >= 170000
	FeBeWaitSet = CreateWaitEventSet(NULL, FeBeWaitSetNEvents);
#else
	FeBeWaitSet = CreateWaitEventSet(TopMemoryContext, FeBeWaitSetNEvents);
#endif
	if (AddWaitEventToSet(FeBeWaitSet, WL_SOCKET_WRITEABLE, port->sock, NULL, NULL) !=
		FeBeWaitSetSocketPos ||
		AddWaitEventToSet(FeBeWaitSet, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL) !=
		FeBeWaitSetLatchPos)
		elog(FATAL, "offshoot handoff: unexpected wait event positions");
	AddWaitEventToSet(FeBeWaitSet, WL_POSTMASTER_DEATH, PGINVALID_SOCKET, NULL, NULL);
}

/* The session's addresses become the client's, as for a direct TCP login. */
static void
adopt_addresses(Port *port)
{
	char		host[NI_MAXHOST];
	char		service[NI_MAXSERV];

	port->laddr.salen = sizeof(port->laddr.addr);
	if (getsockname(port->sock, (struct sockaddr *) &port->laddr.addr, &port->laddr.salen) != 0)
		port->laddr.salen = 0;
	port->raddr.salen = sizeof(port->raddr.addr);
	if (getpeername(port->sock, (struct sockaddr *) &port->raddr.addr, &port->raddr.salen) != 0)
		port->raddr.salen = 0;
	if (getnameinfo((struct sockaddr *) &port->raddr.addr, port->raddr.salen,
					host, sizeof(host), service, sizeof(service),
					NI_NUMERICHOST | NI_NUMERICSERV) == 0)
	{
		port->remote_host = MemoryContextStrdup(TopMemoryContext, host);
		port->remote_port = MemoryContextStrdup(TopMemoryContext, service);
	}
}

static void
take_client_socket(Port *port, int client)
{
	int			kept_proxy_socket;

	if (!is_tcp_stream(client))
	{
		close(client);
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("offshoot handoff: the proxy passed something other than a TCP connection")));
	}
	/*
	 * The Unix socket stays open (close-on-exec, never read) until this
	 * process exits: its end is how the proxy learns the session is over.
	 */
	kept_proxy_socket = fcntl(port->sock, F_DUPFD_CLOEXEC, 0);
	if (kept_proxy_socket < 0 || dup2(client, port->sock) < 0)
	{
		close(client);
		ereport(FATAL,
				(errcode_for_socket_access(),
				 errmsg("offshoot handoff: could not install the client socket: %m")));
	}
	close(client);
	if (!pg_set_noblock(port->sock))
		ereport(FATAL,
				(errcode_for_socket_access(),
				 errmsg("offshoot handoff: could not set the client socket non-blocking: %m")));
	rebuild_wait_set(port);
	adopt_addresses(port);
	ereport(DEBUG1,
			(errmsg_internal("offshoot handoff: the session runs on the client's socket")));
}

static void
offshoot_client_authentication(Port *port, int status)
{
	int			client;

	if (previous_hook)
		previous_hook(port, status);
	if (status != STATUS_OK || port->laddr.addr.ss_family != AF_UNIX || !handoff_asked(port))
		return;
	/* A client that spoke ahead keeps the relay: its bytes are queued here. */
	if (unread_input(port->sock))
		return;
	send_request(port->sock);
	client = receive_answer(port->sock);
	if (client >= 0)
		take_client_socket(port, client);
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomBoolVariable(HANDOFF_OPTION,
							 "Asks to take over the client's socket from the offshoot proxy.",
							 "Set by the offshoot proxy in the startup packet; read once, at login.",
							 &handoff_option,
							 false,
							 PGC_BACKEND,
							 0,
							 NULL, NULL, NULL);
	previous_hook = ClientAuthentication_hook;
	ClientAuthentication_hook = offshoot_client_authentication;
}
