/*
 * Descriptor passing for station reads (SCM_RIGHTS over a Unix stream socket), which Node lacks.
 * The host (send) and the runtime in the container (recv) load the same addon. N-API only, plain
 * C and libc: one build serves every Node >= 18 and both the slim and the offline base images.
 * Every socket here is non-blocking: nothing in it can stall an event loop; a full queue or an
 * absent peer is an errno, and the caller falls back to streaming the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>
#include <node_api.h>

#define CHECK(call) do { if ((call) != napi_ok) return NULL; } while (0)

static napi_value num(napi_env env, int64_t v) {
  napi_value out;
  CHECK(napi_create_int64(env, v, &out));
  return out;
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static int arg_path(napi_env env, napi_value v, struct sockaddr_un *addr) {
  size_t len = 0;
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, v, addr->sun_path, sizeof addr->sun_path, &len) != napi_ok) return 0;
  return len > 0 && len < sizeof addr->sun_path - 1;
}

static napi_value bad_args(napi_env env) {
  napi_throw_type_error(env, NULL, "fdpass: bad arguments");
  return NULL;
}

/* connect(path) -> socket fd, or -errno. Non-blocking: a full backlog is -EAGAIN, never a wait. */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  struct sockaddr_un addr;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_path(env, argv[0], &addr)) return bad_args(env);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return num(env, -errno);
  if (connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) { int e = errno; close(s); return num(env, -e); }
  /* The host only sends: what the peer might send back (descriptors included) is never read. */
  shutdown(s, SHUT_RD);
  return num(env, s);
}

/* listen(path) -> listening socket fd, or -errno (the socket file's mode comes from the umask). */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1];
  struct sockaddr_un addr;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_path(env, argv[0], &addr)) return bad_args(env);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (s < 0) return num(env, -errno);
  if (bind(s, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s, 1) != 0) { int e = errno; close(s); return num(env, -e); }
  return num(env, s);
}

/* accept(listener) -> connected socket fd, or -errno (-EAGAIN: nobody has connected). */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t l;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &l)) return bad_args(env);
  int s = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  return num(env, s < 0 ? -errno : s);
}

/* send(socket, fd, tag) -> 0, or -errno: one message of 4 bytes (the tag, big-endian) carrying exactly one descriptor. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3; napi_value argv[3]; int32_t s, fd; uint32_t tag;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || !arg_int(env, argv[0], &s) || !arg_int(env, argv[1], &fd) || napi_get_value_uint32(env, argv[2], &tag) != napi_ok) return bad_args(env);
  unsigned char data[4] = { tag >> 24, tag >> 16, tag >> 8, tag };
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  memset(&control, 0, sizeof control);
  struct iovec iov = { data, sizeof data };
  struct msghdr msg = { 0 };
  msg.msg_iov = &iov; msg.msg_iovlen = 1;
  msg.msg_control = control.buf; msg.msg_controllen = sizeof control.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n = sendmsg(s, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n < 0) return num(env, -errno);
  /* A stream socket takes 4 bytes whole or not at all when its buffer has room; anything else breaks the framing. */
  return num(env, n == sizeof data ? 0 : -EPROTO);
}

/* queued(socket) -> bytes sent and not yet read by the peer (SIOCOUTQ), or -errno. */
static napi_value js_queued(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t s; int q = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &s)) return bad_args(env);
  if (ioctl(s, SIOCOUTQ, &q) != 0) return num(env, -errno);
  return num(env, q);
}

/*
 * recv(socket) -> [tag, fd], or -errno (-EAGAIN: nothing queued). One message of 4 bytes; a message
 * without exactly one descriptor, or a short one, is -EPROTO, and any descriptor it carried is closed.
 */
static napi_value js_recv(napi_env env, napi_callback_info info) {
  size_t argc = 1; napi_value argv[1]; int32_t s;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !arg_int(env, argv[0], &s)) return bad_args(env);
  unsigned char data[4];
  union { char buf[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr align; } control;
  struct iovec iov = { data, sizeof data };
  struct msghdr msg = { 0 };
  msg.msg_iov = &iov; msg.msg_iovlen = 1;
  msg.msg_control = control.buf; msg.msg_controllen = sizeof control.buf;
  ssize_t n = recvmsg(s, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return num(env, -errno);
  int fd = -1, extra = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) {
      int got; memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      if (fd < 0) fd = got; else { close(got); extra = 1; }
    }
  }
  if (n != sizeof data || fd < 0 || extra || (msg.msg_flags & MSG_CTRUNC)) {
    if (fd >= 0) close(fd);
    return num(env, n == 0 ? -EPIPE : -EPROTO);
  }
  uint32_t tag = ((uint32_t)data[0] << 24) | ((uint32_t)data[1] << 16) | ((uint32_t)data[2] << 8) | data[3];
  napi_value out, t, f;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_uint32(env, tag, &t));
  CHECK(napi_create_int32(env, fd, &f));
  CHECK(napi_set_element(env, out, 0, t));
  CHECK(napi_set_element(env, out, 1, f));
  return out;
}

NAPI_MODULE_INIT() {
  static const struct { const char *name; napi_callback cb; } fns[] = {
    { "connect", js_connect }, { "listen", js_listen }, { "accept", js_accept },
    { "send", js_send }, { "queued", js_queued }, { "recv", js_recv },
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
