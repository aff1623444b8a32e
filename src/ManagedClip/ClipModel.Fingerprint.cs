namespace ManagedClip;

public sealed partial class ClipModel
{
    /// <summary>
    /// The weights' identity (64 lower-case hex digits, see <see cref="Checkpoints.Checkpoint.Fingerprint"/>): what
    /// class-embedding caches and search indexes record, so that results of one model are never served for another.
    /// Computed once, on first use, in milliseconds.
    /// </summary>
    public string Fingerprint
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _checkpoint.Fingerprint;
        }
    }
}
