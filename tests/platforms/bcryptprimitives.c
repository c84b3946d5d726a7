/* Test fixture only, never shipped: Wine 8 lacks bcryptprimitives.dll, whose ProcessPrng
 * (Windows 10 and later) Rust's standard library calls for random bytes. This stand-in
 * forwards to RtlGenRandom (SystemFunction036 in advapi32) so that the Windows builds run
 * under Wine in tests/platforms.rs. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return RtlGenRandom(data, (ULONG)len);
}
