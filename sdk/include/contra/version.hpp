#pragma once
/// \file
/// SDK version. The ABI version changes whenever a change to these headers can
/// break a plugin binary built against an older SDK; the runtime refuses a
/// plugin library whose ABI version differs from its own.

#define CONTRA_SDK_VERSION_MAJOR 0
#define CONTRA_SDK_VERSION_MINOR 5
#define CONTRA_SDK_VERSION_PATCH 0
#define CONTRA_SDK_VERSION_STRING "0.5.0"
#define CONTRA_SDK_ABI_VERSION 5u

namespace contra {
inline constexpr unsigned sdk_abi_version = CONTRA_SDK_ABI_VERSION;
inline constexpr const char* sdk_version = CONTRA_SDK_VERSION_STRING;
}  // namespace contra
