// How `evshim trace` shows the BSD kqueue calls (FreeBSD, OpenBSD,
// DragonFly; LP64 and ILP32): kqueue, kqueuex/kqueue1, kevent (each
// personality's struct kevent), freebsd11_kevent (the 32-byte struct) and
// evshim's private evshim_kqueue_signal, _fork and _fdclose. One set of formatters: the
// personality comes from the table entry (CallView::personality()), the
// record layouts from abi/bsd/kevent.h.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "abi/bsd/kevent.h"
#include "abi/common/data_model.h"
#include "abi/trace/format.h"

namespace evshim::abi::bsd {

extern const trace::Formatter kKqueueTrace;          // kqueue()
extern const trace::Formatter kKqueueFlagsTrace;     // kqueuex(flags), kqueue1(flags)
extern const trace::Formatter kKeventTrace;          // kevent(...), the personality's current struct
extern const trace::Formatter kFreebsd11KeventTrace; // freebsd11_kevent(...), 32-byte struct
extern const trace::Formatter kKqueueForkTrace;      // evshim_kqueue_fork(phase, token)
extern const trace::Formatter kKqueueSignalTrace;    // evshim_kqueue_signal(signo)
extern const trace::Formatter kKqueueFdCloseTrace;   // evshim_kqueue_fdclose(fd)
extern const trace::Formatter kKqueueSettleTrace;    // evshim_kqueue_settle()

// Exposed for unit tests. Names are the personality's (foreign values).
std::string FilterName(Personality p, int16_t filter);
std::string EvFlagNames(Personality p, uint16_t flags);
// fflags by filter: NOTE_TRIGGER|NOTE_FFCOPY|0x21 (USER), NOTE_EXIT (PROC),
// timer units (NOTE_USECONDS), ...; unknown filters and bits in hex.
std::string NoteNames(Personality p, int16_t filter, uint32_t fflags);
// One struct kevent in layout `l`:
// {ident=7, EVFILT_READ, EV_ADD|EV_CLEAR, fflags=0, data=0, udata=0x...}.
// `returned`: a record the kernel wrote, whose EV_ERROR data is an errno.
std::string KeventText(Personality p, const KeventLayout& l, std::span<const std::byte> bytes,
                       bool returned);

}  // namespace evshim::abi::bsd
