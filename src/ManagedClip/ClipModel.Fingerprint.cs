namespace ManagedClip;

public sealed partial class ClipModel
{
    /// <summary>
    /// The weights' identity (64 lower-case hex digits, see <see cref="Checkpoints.Checkpoint.Fingerprint"/>): what
    /// class-embedding caches and search indexes record, so that results of one model are never served for another.
    /// Computed at load, over every byte of the checkpoint.
    /// </summary>
    public string Fingerprint
    {
        get
        {
            using var call = _calls.Enter(this);
            return _fingerprint;
        }
    }
}
