namespace ManagedClip; internal static class Placeholder {}
